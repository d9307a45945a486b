"""Moderators' review queue: flagged activities (and those cropped after a decision, beside
the reasons they were flagged for), highest score first, then, in a section of their own, the
random sample of cleared activities near the threshold, marked as such; each with the
evidence and the decisions (dismiss, confirm, and for a flag, ask the athlete to crop: a
crop request would reveal a sample to its athlete)."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit_folium import st_folium

from core import units
from core.accounts.users import user_by_id
from core.activities.tables import SPORTS
from core.anomaly.calibration import (
    CALIBRATION_MIN,
    MAX_STEP,
    SAMPLE_MIN,
    calibration,
    flag_precision,
    threshold,
)
from core.anomaly.failures import MAX_ATTEMPTS, count_given_up, given_up, try_again
from core.anomaly.flags import ModerationError
from core.anomaly.live import LIMITS
from core.anomaly.moderation import decide, queue
from core.anomaly.rules import REASON_LABELS
from core.anomaly.scoring import SAMPLE_BAND, SAMPLE_RATE
from core.challenges.award_reads import recent_withdrawals, withdrawals_for
from core.config import load_settings
from core.jobs import devices
from core.storage.engine import write_transaction
from dashboard import data, queries, ui
from dashboard.maps import review_map

v = ui.moderator()

settings = load_settings()
st.title("Flagged activities")

with data.sessions()() as s:
    precision = flag_precision(s)
calibrated = calibration(settings)  # the worker recalibrates; the page only reads
cols = st.columns(4)
cols[0].metric("Decided flags", precision["decided"])
cols[1].metric("Confirmed", precision["confirmed"])
cols[2].metric("Dismissed", precision["dismissed"])
cols[3].metric("Precision of past flags", "–" if precision["precision"] is None else f"{precision['precision']:.0%}")
st.caption(f"Flagging threshold {threshold(settings):.2f}"
           + (f" (recalibrated from {calibrated['positives']} confirmed and {calibrated['negatives']} dismissed "
              f"decisions, {calibrated.get('samples', 0)} of them on samples, F1 {calibrated['f1']:.2f}; "
              f"it moves at most {MAX_STEP:.2f} per recalibration)" if calibrated
              else f" (the default, until {CALIBRATION_MIN} confirmed and {CALIBRATION_MIN} dismissed "
                   "decisions)"))
st.caption(f"The queue also holds a random sample ({SAMPLE_RATE:.0%}) of the activities cleared within "
           f"{SAMPLE_BAND:.2f} below the threshold: they are not held and their athletes are told nothing. "
           f"Confirming one holds it like a confirmed flag; decided samples can lower the threshold once "
           f"{SAMPLE_MIN} are decided ({precision['samples']} decided, {precision['samples_confirmed']} found "
           "irregular). A sample cannot be sent back for a crop: that would tell its athlete.")

with data.sessions()() as s:
    withdrawn = recent_withdrawals(s, 20)
with st.expander(f"Badges withdrawn lately ({len(withdrawn)})", icon=":material/military_tech:"):
    if not withdrawn:
        st.caption("No badge has been withdrawn.")
    for award, badge, athlete in withdrawn:
        line, link = st.columns([5, 1])
        line.markdown(f":material/{badge.icon}: {ui.strong(badge.name)} from {ui.strong(ui.who(athlete.name, athlete.username))} "
                      f"(@{ui.plain(athlete.username)}) · {ui.when(award.withdrawn_at)}: "
                      f"{ui.plain(award.withdrawn_reason or '')}")
        if award.withdrawn_activity_id:
            link.page_link("views/activity.py", label="Activity", icon=":material/route:",
                           query_params={"id": str(award.withdrawn_activity_id)})

with data.sessions()() as s:
    unscored = given_up(s, 20)
    unscored_count = count_given_up(s)
with st.expander(f"Could not be scored ({unscored_count})", icon=":material/error:", expanded=bool(unscored)):
    st.caption(f"Scoring failed on these activities {MAX_ATTEMPTS} times, each error their own, so they have "
               "escaped the detector: they are not held, and their athletes are told nothing. Look at each one; "
               "once the cause is mended, have it scored again.")
    if not unscored:
        st.caption("Every completed activity could be scored.")
    for failure, activity, athlete, retried_by in unscored:
        line, link, again = st.columns([5, 1, 1])
        retried = (f" · scored again at the request of @{ui.plain(retried_by.username)} "
                   f"{ui.when(failure.retried_at)}, and failed again" if retried_by is not None else "")
        line.markdown(f"{ui.strong(activity.title)} by {ui.strong(ui.who(athlete.name, athlete.username))} "
                      f"(@{ui.plain(athlete.username)}) · failed {failure.attempts} times since "
                      f"{ui.when(failure.first_failed_at)}, last {ui.when(failure.failed_at)}{retried}")
        line.code(failure.error, language=None)
        link.page_link("views/activity.py", label="Activity", icon=":material/route:",
                       query_params={"id": str(activity.id)})
        if again.button("Score again", key=f"unscored_{activity.id}", icon=":material/refresh:"):
            with write_transaction(data.sessions(), "moderation") as s:
                queued = try_again(s, activity.id, user_by_id(s, v.id))
            if queued:
                st.rerun()
            st.warning("It is no longer waiting: it was scored, or is being tried again already.")
    if unscored_count > len(unscored):
        st.caption(f"The latest {len(unscored)} shown, of {unscored_count}.")

with data.sessions()() as s:
    stale = devices.given_up(s, 20)
    stale_count = devices.count_given_up(s)
with st.expander(f"Late fixes not applied ({stale_count})", icon=":material/sync_problem:", expanded=bool(stale)):
    st.caption(f"A phone sent fixes after these activities were completed, and recomputing them failed "
               f"{MAX_ATTEMPTS} times: their summary is the one from before the late fixes. Look at each "
               "error; once the cause is mended, have it recomputed (and scored) again. A new late fix "
               "tries it again too.")
    if not stale:
        st.caption("Every late fix is applied.")
    for track_row, activity, athlete in stale:
        line, link, again = st.columns([5, 1, 1])
        line.markdown(f"{ui.strong(activity.title)} by {ui.strong(ui.who(athlete.name, athlete.username))} "
                      f"(@{ui.plain(athlete.username)}) · recomputing failed {track_row.recompute_attempts} times")
        line.code(track_row.recompute_error or "", language=None)
        link.page_link("views/activity.py", label="Activity", icon=":material/route:",
                       query_params={"id": str(activity.id)})
        if again.button("Recompute", key=f"stale_{activity.id}", icon=":material/refresh:"):
            with write_transaction(data.sessions(), "moderation") as s:
                queued = devices.recompute_again(s, activity.id, user_by_id(s, v.id))
            if queued:
                st.rerun()
            st.warning("It is no longer waiting: it was recomputed, or is being tried again already.")
    if stale_count > len(stale):
        st.caption(f"The latest {len(stale)} shown, of {stale_count}.")

REASONS = {"": "any reason", **REASON_LABELS}
left, right = st.columns(2)
sport = left.selectbox("Sport", ["", *SPORTS], format_func=lambda x: x or "any sport")
code = right.selectbox("Reason", list(REASONS), format_func=REASONS.get)

SAMPLE_MARK = "random sample of a cleared activity, near the threshold"
STANDING = {"crop_requested": " · **waiting for the athlete's crop**", "cropped": " · **cropped, to review**",
            "sampled": f" · **{SAMPLE_MARK}**"}


def reason_list(reasons: list[str]) -> str:
    """Reasons as a Markdown list, the athlete-influenced text escaped."""
    return "\n".join(f"- {ui.plain(r)}" for r in reasons) or "- (no reason recorded)"


def show_crop(item: dict, crop: dict) -> None:
    """A cropped item: the reasons the flag was raised for beside what the crop removed and
    changed (figures before the first crop and after the last)."""
    crops = crop.get("crops") or [{}]
    first, last = crops[0].get("before", {}), crops[-1].get("after", {})
    sport = item["sport"]
    was = {"confirmed": "confirmed", "crop_requested": "asked to crop"}.get(crop.get("status_before"), "")
    left, right = st.columns(2)
    with left:
        st.markdown("**Reasons the flag was raised for**" + (f" (a moderator had {was} it)" if was else ""))
        st.markdown(reason_list(crop.get("reasons_before") or []))
        st.markdown("**After the crop**")
        st.markdown(reason_list(item["reasons"]) if item["reasons"] else "- the detector finds nothing irregular")
    with right:
        st.markdown("**The athlete's crop**")
        st.markdown("\n".join(f"- removed {units.duration(c.get('from_s'))} to {units.duration(c.get('to_s'))} of the "
                               f"recording ({c.get('points_removed', 0):,} points)" for c in crops if c))
        ui.table([{"": label, "before": show(first.get(key)), "after": show(last.get(key))}
                  for label, key, show in (
                      ("score", "score", lambda x: "–" if x is None else f"{x:.2f}"),
                      ("distance", "distance_m", lambda x: units.distance(x, "metric")),
                      ("moving time", "moving_time_s", units.duration),
                      (units.pace_or_speed_word(sport), "avg_speed_mps",
                       lambda x: units.pace_or_speed(sport, x, "metric")),
                      ("max speed", "max_speed_mps", lambda x: units.speed(x, "metric")))])


def evidence(item: dict, activity_id: int) -> None:
    """The route map (only what the athlete shows others) beside the speed profile over the
    whole activity, the suspicious stretches marked on both."""
    lat, t = item["lat"], item["t"]
    if lat.size < 2:
        return
    map_col, chart_col = st.columns(2)
    with map_col:
        drawn = review_map(item["map_lat"], item["map_lon"], item["map_t"], item["stretches"], item["shown"])
        st_folium(drawn, height=300, use_container_width=True, returned_objects=[],
                  key=f"review_map_{activity_id}")
        if item["hidden_points"]:
            st.caption(f"{item['hidden_points']} points the athlete hides (privacy zones, hidden ends "
                       "or map) are not drawn; the speed chart covers the whole activity.")
    with chart_col:
        minutes = (t - t[0]) / 60.0
        speed = units.speed_value(np.asarray(item["speed"], dtype=float))
        limit = units.speed_value(LIMITS[item["sport"]][0])  # the vehicle watch's limit
        fig = go.Figure(go.Scatter(x=minutes, y=speed, mode="lines", name="speed", line={"color": "#2c7bb6"}))
        fig.add_hline(y=limit, line={"color": "#d7191c", "dash": "dash"},
                      annotation_text=f"{item['sport']} limit {limit:.0f} km/h")
        for t0, t1 in item["stretches"]:
            fig.add_vrect(x0=(t0 - t[0]) / 60, x1=(t1 - t[0]) / 60, fillcolor="#d7191c", opacity=0.15,
                          line_width=0)
        fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                          xaxis_title="minutes", yaxis_title="km/h", yaxis_rangemode="tozero", showlegend=False)
        st.plotly_chart(fig, use_container_width=True, key=f"review_speed_{activity_id}")


def review_card(activity_id: int, score: float) -> None:
    """One waiting activity: the evidence and the decisions."""
    with data.sessions()() as s:
        item = queries.review_item(s, activity_id, v.id)
    if item is None:
        return
    with st.container(border=True, key=f"review_{activity_id}"):
        st.markdown(f"#### {ui.SPORT_ICON.get(item['sport'], '')} {ui.plain(item['title']) or 'Untitled'} · score {score:.2f}")
        st.markdown(f"{ui.strong(item['athlete'])} (@{ui.plain(item['username'])}) · "
                    f"{ui.when(item['start_time'])} · {units.distance(item['distance_m'], 'metric')} · "
                    f"{units.pace_or_speed(item['sport'], item['avg_speed_mps'], 'metric')}"
                    + STANDING.get(item["status"], ""))
        crop = item["crop"] if item["status"] == "cropped" else None
        if crop:
            show_crop(item, crop)
        elif item["status"] == "sampled":
            st.info(f"A {SAMPLE_MARK}: the detector cleared it (score {score:.2f}, threshold "
                    f"{threshold(settings):.2f}) and it stays on the leaderboards; its athlete sees nothing of "
                    "this review. Dismiss it if it looks fine; confirming holds it as irregular.",
                    icon=":material/shuffle:")
            if item["reasons"]:
                st.markdown(reason_list(item["reasons"]))
        else:
            st.markdown(reason_list(item["reasons"]))
        with data.sessions()() as s:
            lost = withdrawals_for(s, activity_id)
        if lost:
            st.caption("Badges withdrawn: " + "; ".join(
                f"{ui.plain(b.name)} ({ui.when(a.withdrawn_at)}: {ui.plain(a.withdrawn_reason or '')})"
                for a, b in lost))
        usual = item["usual"]
        st.caption("Athlete's usual: " + (f"{units.pace_or_speed(item['sport'], usual['speed_mps'], 'metric')} "
                                          f"over {usual['count']} past {item['sport']}s" if usual
                                          else "not enough history yet"))
        evidence(item, activity_id)
        st.page_link("views/activity.py", label="Open the activity", icon=":material/route:",
                     query_params={"id": str(activity_id)})
        with st.form(f"decide_{activity_id}"):
            note = st.text_input("Note to the athlete (optional)", max_chars=500)
            sampled = item["status"] == "sampled"  # no crop request: it would tell the athlete
            buttons = st.columns(2 if sampled else 3)
            action = None
            if buttons[0].form_submit_button("Dismiss: legitimate", icon=":material/check:"):
                action = "dismiss"
            if buttons[1].form_submit_button("Confirm: irregular", icon=":material/block:", type="primary"):
                action = "confirm"
            if not sampled and buttons[2].form_submit_button("Ask the athlete to crop",
                                                             icon=":material/content_cut:"):
                action = "request_crop"
            if action:
                try:
                    # A short write transaction that takes SQLite's write lock at once, so the
                    # flag read is the one the decision changes (the athlete may be cropping).
                    with write_transaction(data.sessions(), "moderation") as s:
                        decide(s, activity_id, user_by_id(s, v.id), action, note)
                except ModerationError as exc:
                    st.error(str(exc))
                else:
                    data.forget_activity()
                    st.rerun()


# Flags and samples apart: the queue sorts by score, and samples (scored below the threshold)
# come after every flag, so a page of the highest scores would never reach them. The core
# queue filters by sport and reason only, so all that waits is read and split here.
PAGE = 20
with data.sessions()() as s:
    waiting = [(flag.activity_id, flag.score, flag.status == "sampled")
               for flag, _ in queue(s, sport or None, code or None, limit=None)]
flags = [(a, score) for a, score, sampled in waiting if not sampled]
samples = [(a, score) for a, score, sampled in waiting if sampled]
if not waiting:
    st.info("Nothing waiting for review.")
    st.stop()

st.subheader(f"Flags ({len(flags)} waiting)")
if not flags:
    st.caption("No flag waiting.")
for activity_id, score in flags[:PAGE]:
    review_card(activity_id, score)
if samples:
    st.subheader(f"Random samples ({len(samples)} waiting)")
    st.caption(f"Each a {SAMPLE_MARK}; its athlete sees nothing of the review.")
    for activity_id, score in samples[:PAGE]:
        review_card(activity_id, score)
