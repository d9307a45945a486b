"""Upload GPX, TCX and FIT files: several at once, duplicates recognised, bad files explained,
and a name too long for a title shortened with a note saying so; and a Strava archive."""

import logging

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from core import units
from core.accounts.users import user_by_id
from core.activities.archive import ArchiveError, import_archive
from core.activities.imports import import_file
from core.activities.lifecycle import ActivityError
from core.activities.tables import SPORTS, VISIBILITIES
from core.config import load_settings
from core.text import TITLE_MAX_CHARS
from core.tracks.formats import FORMATS
from core.tracks.formats.common import TrackFileError
from dashboard import data, ui

log = logging.getLogger(__name__)
v = ui.viewer()
st.title("Upload activities")
settings = load_settings()
st.caption(f"GPX, TCX or FIT files from any device, up to {settings.max_upload_bytes // (1024 * 1024)} MB each. "
           "A file you already imported is recognised and not added twice.")

with st.form("upload", clear_on_submit=True):
    files = st.file_uploader("Activity files", type=list(FORMATS), accept_multiple_files=True,
                             max_upload_size=max(1, settings.max_upload_bytes // (1024 * 1024)))
    c1, c2 = st.columns(2)
    sport_choice = c1.selectbox("Sport", ["from the file", *SPORTS])
    visibility = c2.selectbox("Who can see them", ["my default", *VISIBILITIES])
    submitted = st.form_submit_button("Import", type="primary")

if submitted:
    if not files:
        st.warning("Choose at least one file.")
    else:
        results = []
        bar = st.progress(0.0, text="Importing…")
        for k, f in enumerate(files, start=1):
            bar.progress((k - 1) / len(files), text=f"Importing {ui.plain(f.name)} ({k} of {len(files)})")
            try:
                Session = data.sessions()
                with Session() as s:
                    user = user_by_id(s, v.id)
                # The import opens its own short write transactions: SQLite has one writer, and
                # the ingest server must not wait for a whole file.
                activity = import_file(Session, user, f.name, f.getvalue(),
                                       sport=None if sport_choice == "from the file" else sport_choice,
                                       visibility=None if visibility == "my default" else visibility)
                name_chars = (activity.summary or {}).get("cut_chars", {}).get("name")
                results.append(("ok", f.name, activity.id, activity.sport, activity.distance_m, activity.title,
                                name_chars))
            except TrackFileError as exc:
                results.append(("bad", f.name, str(exc)))
            except ActivityError as exc:
                results.append(("duplicate" if exc.code == "duplicate" else "bad", f.name, str(exc)))
            except SQLAlchemyError:
                # Whatever the database refused, the athlete gets a sentence and the other files go on.
                log.exception("storing an uploaded file failed")
                results.append(("bad", f.name, "the database could not store this file; nothing of it was "
                                 "imported. Try again, or report it if it keeps happening."))
        bar.progress(1.0, text=f"Done: {len(files)} file(s)")
        data.forget_activity_lists()
        st.session_state.upload_results = results

for r in st.session_state.get("upload_results", []):
    if r[0] == "ok":
        st.success(f"{ui.plain(r[1])}: imported as a {r[3]} of {units.distance(r[4], v.units)}")
        st.page_link("views/activity.py", label=f"Open {ui.plain(r[5] or 'the activity')}",
                     query_params={"id": r[2]}, icon=":material/route:")
        if r[6]:
            st.warning(f"{ui.plain(r[1])}: the activity's name in the file is {r[6]:,} characters long, so its "
                       f"title is shortened to {TITLE_MAX_CHARS} characters, ending in “…”. You can edit it "
                       "on the activity's page.")
    elif r[0] == "duplicate":
        st.info(f"{ui.plain(r[1])}: {ui.plain(r[2])}")
    else:
        st.error(f"{ui.plain(r[1])}: {ui.plain(r[2])}")

st.subheader("Moving from Strava")
st.caption("Request your archive on Strava (Settings → My Account → Download or Delete Your Account), then upload "
           "the zip here: its runs and rides come in with their names and dates. Other sports and manual entries "
           "are skipped, and what you already imported is recognised.")
with st.form("archive", clear_on_submit=True):
    archive = st.file_uploader("Strava archive (zip)", type=["zip"], accept_multiple_files=False, max_upload_size=512)
    archive_visibility = st.selectbox("Who can see them", ["as on Strava, else my default", *VISIBILITIES],
                                      key="archive_visibility")
    archive_submitted = st.form_submit_button("Import the archive", type="primary")

if archive_submitted:
    if archive is None:
        st.warning("Choose the zip file of your Strava archive.")
    else:
        Session = data.sessions()
        with Session() as s:
            user = user_by_id(s, v.id)
        bar = st.progress(0.0, text="Reading the archive…")

        def step(k: int, n: int) -> None:
            bar.progress(k / max(n, 1), text=f"Importing activity {k + 1} of {n}")

        lines: list[dict] = []
        try:
            for line in import_archive(Session, user, archive, progress=step,
                                       visibility=None if archive_visibility.startswith("as on") else
                                       archive_visibility):
                lines.append(line)
        except ArchiveError as exc:
            st.session_state.archive_results = {"error": str(exc)}
        else:
            st.session_state.archive_results = {"lines": lines}
        bar.progress(1.0, text="Done")
        data.forget_activity_lists()

if found := st.session_state.get("archive_results"):
    if "error" in found:
        st.error(f"The archive could not be read: {ui.plain(found['error'])}.")
    else:
        lines = found["lines"]
        done = [x for x in lines if "activity_id" in x]
        skipped = [x for x in lines if "skipped" in x]
        failed = [x for x in lines if "error" in x]
        st.success(f"Imported {len(done)} activit{'y' if len(done) == 1 else 'ies'}; skipped {len(skipped)}; "
                   f"{len(failed)} could not be read.")
        for x in failed:
            st.error(f"Row {x['row']} ({ui.plain(x['name']) or 'untitled'}): {ui.plain(x['error'])}")
        for x in done:
            if x.get("note"):
                st.warning(f"Row {x['row']} ({ui.plain(x['name']) or 'untitled'}): imported, but "
                           f"{ui.plain(x['note'])}")
        if skipped:
            with st.expander(f"Skipped ({len(skipped)})"):
                for x in skipped:
                    st.markdown(f"Row {x['row']} ({ui.plain(x['name']) or 'untitled'}): {ui.plain(x['skipped'])}")
