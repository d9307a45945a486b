"""Storage tiers, for moderators: where the activities' points are (what ``python -m core
tiers status`` prints) and a move between the tiers started now (``tiers run``), with its
progress. The worker moves them every hour anyway (``core.jobs.tiers``)."""

import logging
from urllib.parse import urlsplit, urlunsplit

import streamlit as st

from core.config import load_settings
from core.storage.tiers import status
from core.units import file_size
from dashboard import data, tier_moves, ui

v = ui.moderator()

settings = load_settings()
st.title("Storage tiers")





def plain_location(url: str) -> str:
    """The archive's location without what may be a secret in it (a user and password, a
    query string with keys)."""
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


try:
    figures = status(data.sessions(), settings)
except Exception as exc:  # noqa: BLE001 - an archive out of reach (a bad URL, a missing bucket), said plainly
    # Its kind alone: the error's text may quote the archive's URL, secrets and all.
    st.error(f"The archive at {ui.plain(plain_location(settings.archive_url or ''))} cannot be read "
             f"({type(exc).__name__}); see the dashboard's log. Nothing can move until it can.")
    logging.getLogger(__name__).warning("storage tiers: the archive cannot be read", exc_info=True)
    st.stop()
hot, cold, due = figures["hot"], figures["cold"], figures["due"]
cols = st.columns(3)
cols[0].metric("In the database (hot)", f"{hot['activities']:,} activities",
               f"{hot['points']:,} points, {file_size(hot['bytes'])}", delta_color="off", delta_arrow="off")
cols[1].metric("In the archive (cold)", f"{cold['activities']:,} activities",
               f"{cold['points']:,} points in {cold['files']:,} files, {file_size(cold['bytes'])}",
               delta_color="off", delta_arrow="off")
cols[2].metric("Due now", f"{due['archive']:,} to archive", f"{due['restore']:,} to bring back",
               delta_color="off", delta_arrow="off")
parts = figures["partitions"]
if parts is not None:
    st.caption(f"Points table partitions: {parts['open']} open (hot), {parts['closed']} closed (warm, "
               f"{parts['warm_points']:,} points still in them).")
kept = figures["originals"]
st.caption(f"Uploaded files kept for their athletes' exports: {kept['files']:,}, {file_size(kept['bytes'])} "
           "gzipped, in the archive.")
limits = figures["thresholds"]
st.caption(f"Archive: {ui.plain(plain_location(figures['archive']))}. Activities started, and last read, more than "
           f"{limits['cold_after_days']:g} days ago are archived; an archived activity read "
           f"{limits['hot_after_reads']} times, each within {limits['hot_reads_window_days']:g} days of the one "
           "before, comes back to the database. The worker moves them every hour.")

st.subheader("Move now")


@st.fragment(run_every=2)
def progress() -> None:
    move = tier_moves.last()
    if move is None or not move.running:
        st.rerun()  # finished: the whole page shows the new figures
    share = move.done / move.total if move.total else 0.0
    st.progress(share, text=f"Moving: {move.done} of {move.total} activities")


move = tier_moves.last()
if move is not None and move.running:
    progress()
else:
    if move is not None:
        when = ui.when(move.finished_at)
        if move.error:
            st.error(f"The move started by {ui.plain(move.by)} failed ({when}): {ui.plain(move.error)}")
        else:
            r = move.result
            st.success(f"The move started by {ui.plain(move.by)} ended {when}: {r['archived']} activities archived "
                       f"({r['archived_points']:,} points), {r['restored']} brought back "
                       f"({r['restored_points']:,} points), {r['partitions_emptied']} partitions emptied"
                       + (f", {r['failed']} failed (see the log)" if r["failed"] else "") + ".")
    with st.form("move_now"):
        days = st.number_input("Archive activities older than (days)", min_value=0.0,
                               value=float(settings.tier_cold_days), step=1.0,
                               help="Leave it at the configured age, or lower it to archive more now.")
        if st.form_submit_button("Move now", icon=":material/archive:"):
            older = None if days == float(settings.tier_cold_days) else float(days)
            if tier_moves.start(data.sessions(), settings, v.username, older) is None:
                st.info("A move is running already.")
            else:
                st.rerun()
