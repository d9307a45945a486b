"""Moderators' review queue: flagged activities, highest score first, with the evidence and
the three decisions (dismiss, confirm, ask the athlete to crop)."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from streamlit_folium import st_folium

from core.anomaly import store
from core.anomaly.limits import RIDE_LEVEL_SPEED_MPS, RUN_SUSTAINED_MPS
from core.config import load_settings
from core.models import User
from dashboard import data, fmt, queries, ui
from dashboard.maps import review_map

v = ui.viewer()
if v.role != "moderator":  # not in an athlete's navigation; refuse anyway if reached
    st.error("This page is for moderators.")
    st.stop()

settings = load_settings()
st.title("Flagged activities")

with data.sessions()() as s:
    precision = store.flag_precision(s)
calibration = store.calibration(settings)  # the worker recalibrates; the page only reads
cols = st.columns(4)
cols[0].metric("Decided flags", precision["decided"])
cols[1].metric("Confirmed", precision["confirmed"])
cols[2].metric("Dismissed", precision["dismissed"])
cols[3].metric("Precision of past flags", "–" if precision["precision"] is None else f"{precision['precision']:.0%}")
st.caption(f"Flagging threshold {store.threshold(settings):.2f}"
           + (f" (recalibrated from {calibration['positives']} confirmed and {calibration['negatives']} dismissed "
              f"flags, F1 {calibration['f1']:.2f})" if calibration
              else f" (the default, until {store.CALIBRATION_MIN} flags of each kind are decided)"))

REASONS = {"": "any reason", "faster_than_record": "faster than a world record", "vehicle_speed": "vehicle speed",
           "beyond_human_power": "beyond human power", "teleport": "GPS jumps", "copy": "copy of another athlete"}
left, right = st.columns(2)
sport = left.selectbox("Sport", ["", "run", "ride"], format_func=lambda x: x or "any sport")
code = right.selectbox("Reason", list(REASONS), format_func=REASONS.get)

with data.sessions()() as s:
    items = store.queue(s, sport or None, code or None, limit=20)
    pending = [(flag.activity_id, flag.score) for flag, _ in items]
if not pending:
    st.info("Nothing waiting for review.")
    st.stop()

for activity_id, score in pending:
    with data.sessions()() as s:
        item = queries.review_item(s, activity_id)
    if item is None:
        continue
    with st.container(border=True, key=f"review_{activity_id}"):
        st.markdown(f"#### {fmt.SPORT_ICON.get(item['sport'], '')} {ui.plain(item['title'])} · score {score:.2f}")
        st.markdown(f"**{ui.plain(item['athlete'])}** (@{ui.plain(item['username'])}) · "
                    f"{fmt.when(item['start_time'])} · {fmt.distance(item['distance_m'], 'metric')} · "
                    f"{fmt.pace_or_speed(item['sport'], item['avg_speed_mps'], 'metric')}"
                    + (" · **waiting for the athlete's crop**" if item["status"] == "crop_requested" else ""))
        st.markdown("\n".join(f"- {ui.plain(r)}" for r in item["reasons"]) or "- (no reason recorded)")
        usual = item["usual"]
        st.caption("Athlete's usual: " + (f"{fmt.pace_or_speed(item['sport'], usual['speed_mps'], 'metric')} "
                                          f"over {usual['count']} past {item['sport']}s" if usual
                                          else "not enough history yet"))
        lat, lon, t = item["lat"], item["lon"], item["t"]
        if lat.size >= 2:
            map_col, chart_col = st.columns(2)
            with map_col:
                st_folium(review_map(lat, lon, t, item["stretches"]), height=300, use_container_width=True,
                          returned_objects=[], key=f"review_map_{activity_id}")
            with chart_col:
                minutes = (t - t[0]) / 60.0
                speed = np.asarray(item["speed"], dtype=float) * 3.6
                limit = (RUN_SUSTAINED_MPS if item["sport"] == "run" else RIDE_LEVEL_SPEED_MPS) * 3.6
                fig = go.Figure(go.Scatter(x=minutes, y=speed, mode="lines", name="speed", line={"color": "#2c7bb6"}))
                fig.add_hline(y=limit, line={"color": "#d7191c", "dash": "dash"},
                              annotation_text=f"{item['sport']} limit {limit:.0f} km/h")
                for t0, t1 in item["stretches"]:
                    fig.add_vrect(x0=(t0 - t[0]) / 60, x1=(t1 - t[0]) / 60, fillcolor="#d7191c", opacity=0.15,
                                  line_width=0)
                fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10},
                                  xaxis_title="minutes", yaxis_title="km/h", yaxis_rangemode="tozero", showlegend=False)
                st.plotly_chart(fig, use_container_width=True, key=f"review_speed_{activity_id}")
        st.page_link("views/activity.py", label="Open the activity", icon=":material/route:",
                     query_params={"id": str(activity_id)})
        with st.form(f"decide_{activity_id}"):
            note = st.text_input("Note to the athlete (optional)", max_chars=500)
            b1, b2, b3 = st.columns(3)
            action = None
            if b1.form_submit_button("Dismiss: legitimate", icon=":material/check:"):
                action = "dismiss"
            if b2.form_submit_button("Confirm: irregular", icon=":material/block:", type="primary"):
                action = "confirm"
            if b3.form_submit_button("Ask the athlete to crop", icon=":material/content_cut:"):
                action = "request_crop"
            if action:
                try:
                    with data.sessions()() as s, s.begin():
                        store.decide(s, activity_id, s.get(User, v.id), action, note)
                except store.ModerationError as exc:
                    st.error(str(exc))
                else:
                    data.forget_activity()
                    st.rerun()
