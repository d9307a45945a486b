"""One activity: route map coloured by pace or speed, charts, splits, summary, GPX download."""

import re

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots
from streamlit_folium import st_folium

from core import units
from core.activities.lifecycle import ActivityError, delete_activity, edit_activity, get_owned_activity
from core.activities.tables import VISIBILITIES
from core.anomaly.flags import CROP_INVITED
from core.text import TITLE_MAX_CHARS
from dashboard import data, ui
from dashboard.maps import PACE_COLOURS

v = ui.viewer()
raw_id = st.query_params.get("id", "")
# ASCII digits only: str.isdigit() also takes "²" and "٢", which int() refuses or reads.
activity_id = int(raw_id) if re.fullmatch(r"[0-9]{1,18}", raw_id) else None
detail = data.activity_detail(v.id, activity_id) if activity_id else None
if detail is not None:
    data.note_view(activity_id)
if detail is None:
    st.title("Activity")
    st.warning("No such activity, or it is not shared with you. Open one from your feed.")
    st.page_link("views/feed.py", label="Back to the feed", icon=":material/dynamic_feed:")
    st.stop()

sport, unit_system = detail["sport"], v.units
unit_m = units.unit_length_m(unit_system)
unit = units.distance_unit(unit_system)
word = units.pace_or_speed_word(sport)  # "pace" for runs, "speed" for rides
summary = detail["summary"]

st.title(f"{ui.SPORT_ICON.get(sport, '')} {ui.plain(detail['title']) or 'Untitled'}")
st.markdown(f"{ui.strong(ui.who(detail['athlete'], detail['username']))} · {ui.when(detail['start_time'])} · {detail['visibility']}")
if detail["challenges"]:
    st.markdown(ui.challenges_line(detail["challenges"], unit_system))
if detail["badges"]:
    st.markdown(ui.badges_line(detail["badges"], lead="Badge"))
    # The athlete's own new badges are celebrated once per visit.
    toasted = st.session_state.setdefault("badges_toasted", set())
    if detail["user_id"] == v.id and activity_id not in toasted:
        toasted.add(activity_id)
        for b in detail["badges"]:
            st.toast(f"New badge: {ui.plain(b['name'])}", icon=f":material/{b['icon']}:")

FLAG_TEXT = {
    "flagged": "flagged as irregular and held out of leaderboards until a moderator has looked at it",
    "confirmed": "confirmed as irregular by a moderator: it stays out of leaderboards",
    "crop_requested": "held out of leaderboards: a moderator asks you to crop the part that was not "
                      "you running or riding (for example a car ride home)",
    "cropped": "cropped, waiting for a moderator: it stays out of leaderboards until a moderator has "
               "looked at the new version",
}
# What a crop does, told before the athlete crops.
CROP_TEXT = {
    "confirmed": "A moderator confirmed this activity as irregular. A crop sends it back to the moderators: "
                 "it stays out of leaderboards until one of them has looked at the new version.",
    "crop_requested": "Once cropped, the activity goes back to the moderators, who decide whether it returns "
                      "to the leaderboards.",
    "cropped": "Another crop goes to the moderators too; the activity stays out of leaderboards until then.",
}
flag = data.own_flag(v.id, activity_id) if detail["user_id"] == v.id else None
if flag and flag["status"] in FLAG_TEXT:
    cropped = flag["status"] == "cropped"
    # Once cropped after a decision, the decision rests on the reasons the flag had before.
    reasons = (flag["crop"] or {}).get("reasons_before", flag["reasons"]) if cropped else flag["reasons"]
    why = "\n".join(f"- {ui.plain(r)}" for r in reasons) or "- (no reason recorded)"
    if cropped:
        why += "\n\nAfter your crop: " + ("; ".join(ui.plain(r) for r in flag["reasons"])
                                           or "the detector finds nothing irregular any more") + "."
    note = f"\n\nModerator's note: {ui.plain(flag['note'])}" if flag["note"] else ""
    st.warning(f"This activity is {FLAG_TEXT[flag['status']]}. Why:\n\n{why}{note}", icon=":material/flag:")
if flag and flag.get("crop_pending"):
    st.info("Your crop is saved and the activity is being checked again; the result shows here in a "
            "moment. Until then it stands as it did before the crop.", icon=":material/hourglass_top:")
    st.session_state["awaiting_verdict"] = activity_id
elif st.session_state.get("awaiting_verdict") == activity_id:
    # The new verdict is in (written by a worker): lists and boards kept from before it go.
    del st.session_state["awaiting_verdict"]
    data.forget_activity()

figures = [
    ("Distance", units.distance(detail["distance_m"], unit_system)),
    ("Moving time", units.duration(detail["moving_time_s"])),
    ("Elapsed", units.duration(detail["elapsed_time_s"])),
    (f"Avg {word}", units.pace_or_speed(sport, detail["avg_speed_mps"], unit_system)),
    ("Elevation gain", units.elevation(detail["elevation_gain_m"], unit_system)),
    ("Max speed", units.speed(summary.get("max_speed_mps"), unit_system)),
]
for row in (figures[:3], figures[3:]):
    for col, (label, value) in zip(st.columns(3), row):
        col.metric(label, value)

lat, lon = detail["lat"], detail["lon"]
if lat.size >= 2:
    st.subheader("Route")
    st.caption(f"Coloured by {word}: blue slowest, red fastest. "
               f"Numbered markers every {unit}" + (" (every 5 when long)" if detail["distance"][-1] / unit_m > 60 else ""))
    st_folium(data.activity_map(v.id, activity_id, unit_system), height=440, use_container_width=True, returned_objects=[], key=f"map_{activity_id}")
    legend = " ".join(f'<span style="color:{c}">■</span>' for c in PACE_COLOURS)
    st.html(f"<div style='font-size:0.8rem'>slow {legend} fast</div>")
else:
    st.info("This activity has no GPS positions (indoor, or the device recorded none).")

dist = detail["distance"] / unit_m
if lat.size >= 2:
    speed = np.asarray(detail["speed"], dtype=float)
    pace_series = np.array([units.pace_value(sport, s_, unit_system) if np.isfinite(s_) and s_ > 0 else np.nan
                            for s_ in speed], dtype=float)
    ele = np.asarray(detail["ele"], dtype=float)
    hr = np.asarray(detail["hr"], dtype=float)
    rows = [("pace", units.pace_axis(sport, unit_system))]
    if np.isfinite(ele).sum() >= 2:
        rows.append(("ele", f"elevation ({units.elevation_unit(unit_system)})"))
    if np.isfinite(hr).sum() >= 2:
        rows.append(("hr", "heart rate (bpm)"))
    step = max(1, lat.size // 800)  # ~800 points a line draw the same picture and load faster
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, vertical_spacing=0.06)
    for k, (name, title) in enumerate(rows, start=1):
        y = {"pace": pace_series, "ele": units.elevation_value(ele, unit_system), "hr": hr}[name]
        fig.add_trace(go.Scatter(x=np.round(dist[::step], 3), y=np.round(y[::step], 2), mode="lines", name=title,
                                 line={"color": {"pace": "#fc4c02", "ele": "#6b6b76", "hr": "#c0392b"}[name],
                                       "width": 1.6}, fill="tozeroy" if name == "ele" else None,
                                 connectgaps=False), row=k, col=1)
        fig.update_yaxes(title_text=title, row=k, col=1, autorange="reversed" if name == "pace" and sport == "run"
                         else True)
    fig.update_xaxes(title_text=f"distance ({unit})", row=len(rows), col=1)
    fig.update_layout(height=220 * len(rows), margin={"l": 10, "r": 10, "t": 10, "b": 10}, showlegend=False)
    st.subheader("Charts")
    ui.plotly_chart(fig)

split_rows = [{
    unit: s_["index"], "distance": units.distance(s_["distance_m"], unit_system),
    "time": units.duration(s_["moving_time_s"]),
    word: units.pace_or_speed(
        sport, s_["distance_m"] / s_["moving_time_s"] if s_["moving_time_s"] else None, unit_system),
} for s_ in detail["splits"][unit_system]]
if split_rows:
    st.subheader("Splits")
    # A long ride's splits scroll inside the table instead of stretching the page.
    ui.table(split_rows, max_height_px=420 if len(split_rows) > 12 else None)

bests = summary.get("best_efforts_s") or {}
if bests:
    st.subheader("Best efforts")
    ui.table([{"distance": units.effort_name(float(k)), "time": units.duration(t_),
               "pace": units.pace(float(k) / t_, unit_system) if t_ else "–"} for k, t_ in bests.items()])

with st.expander("Details"):
    dropped = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in (summary.get("dropped") or {}).items())
    hr_avg, hr_max = summary.get("avg_hr_bpm"), summary.get("max_hr_bpm")
    st.markdown(f"- recorded points: {detail['points']:,}\n- GPS points used: {int(lat.size):,}\n"
                f"- dropped by cleaning: {dropped or 'none'}\n"
                + (f"- heart rate: average {hr_avg:.0f} bpm, max {hr_max:.0f} bpm\n" if hr_avg and hr_max else ""))

# The GPX is written when the button is pressed, not with every view of the page (a long
# ride's file is megabytes the browser would fetch for nothing).
st.download_button("Download GPX", lambda: data.activity_gpx(v.id, activity_id) or "",
                   file_name=f"activity-{activity_id}.gpx", mime="application/gpx+xml", on_click="ignore",
                   icon=":material/download:")
if detail["user_id"] == v.id and (original := data.original_file(v.id, activity_id)):
    # The file it was imported from, for its athlete alone (another's may hold their name).
    st.download_button(f"Download the original {original['kind'].upper()} file ({units.file_size(original['bytes'])})",
                       lambda: data.original_bytes(v.id, activity_id), file_name=original["name"],
                       mime="application/octet-stream", on_click="ignore", icon=":material/download:",
                       help=f"As you uploaded it: {ui.plain(original['name'])}")

# Cropping: the owner removes a time range (the car ride home); the activity is recomputed
# and scored again, or, after a moderator's confirmation or crop request, sent back to them.
status = flag["status"] if flag else None
if (detail["user_id"] == v.id and detail["status"] == "completed" and lat.size >= 2
        and st.toggle("Crop this activity", key="crop_mode", value=status in CROP_INVITED)):
    t = np.asarray(detail["t"], dtype=float)
    total_min = max(1, int(np.ceil((t[-1] - t[0]) / 60)))
    with st.form("crop_activity"):
        st.caption("Choose the minutes, from the start of the recording, to remove. "
                   + CROP_TEXT.get(status, "The activity is then scored again."))
        start_min, end_min = st.slider("Remove from minute to minute", 0, total_min, (max(0, total_min - 5), total_min))
        if st.form_submit_button("Remove this part", type="primary"):
            from core.anomaly.calibration import threshold
            from core.anomaly.flags import ModerationError
            from core.anomaly.moderation import crop_activity
            from core.anomaly.registry import load_model
            from core.config import load_settings
            from core.jobs.stream import RedisActivityStream

            settings = load_settings()
            # With Redis, the worker's scorers score the crop (``core.jobs.stream``); without,
            # it is scored here.
            redis = data.redis()
            stream = RedisActivityStream(redis) if redis is not None else None
            try:
                new = crop_activity(data.sessions(), activity_id, v.id, t[0] + start_min * 60, t[0] + end_min * 60,
                                    None if stream else load_model(settings), threshold(settings), stream=stream)
            except (ModerationError, ActivityError) as exc:
                st.error(str(exc))
            else:
                data.forget_activity()
                st.session_state["cropped"] = "pending" if stream else new.status
                st.rerun()
CROPPED_TEXT = {
    "clear": "Cropped and scored again: it now looks regular.",
    # Drawn for the moderators' random sample of cleared activities: the athlete is told nothing of it.
    "sampled": "Cropped and scored again: it now looks regular.",
    "flagged": "Cropped and scored again: it still looks irregular; see why above.",
    "cropped": "Cropped. A moderator will look at the new version; until then it stays out of leaderboards.",
    "pending": "Cropped.",
}
if st.session_state.get("cropped"):
    st.success(CROPPED_TEXT.get(st.session_state.pop("cropped"), "Cropped."))

# The owner's controls are built only when asked for: the page stays light to load.
if detail["user_id"] == v.id and st.toggle("Edit or delete this activity", key="edit_mode"):
    with st.container(border=True):
        with st.form("edit_activity"):
            title = st.text_input("Title", value=detail["title"], max_chars=TITLE_MAX_CHARS)
            visibility = st.selectbox("Who can see it", VISIBILITIES, index=VISIBILITIES.index(detail["visibility"]))
            if st.form_submit_button("Save"):
                try:
                    with data.sessions()() as s, s.begin():
                        edit_activity(s, get_owned_activity(s, activity_id, v.id), title=title, visibility=visibility)
                except ActivityError as exc:
                    st.error(str(exc))
                else:
                    data.forget_activity()
                    st.rerun()
        sure = st.checkbox("Delete this activity, its route, comments and kudos for good", key="delete_sure")
        if st.button("Delete activity", disabled=not sure, type="primary"):
            with data.sessions()() as s, s.begin():
                delete_activity(s, get_owned_activity(s, activity_id, v.id))
            data.forget_activity()
            st.switch_page("views/feed.py")
