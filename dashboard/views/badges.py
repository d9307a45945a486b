"""Badges: those the athlete earned (each with the activity that earned it), those
withdrawn and why, the next ones with a progress bar and what is left, and a calendar of
the weekly streak in the athlete's time zone."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import streamlit as st

from core import units
from dashboard import data, ui

WEEKS_SHOWN = 26
NEXT_SHOWN = 9

v = ui.viewer()
st.title("Badges")
b = data.badges(v.id)

c1, c2, c3 = st.columns(3)
c1.metric("Badges earned", len(b["earned"]))
c2.metric("Weekly streak", f"{b['streak']} week{'' if b['streak'] == 1 else 's'}")
c3.metric("Still to earn", len(b["next"]))
st.caption("Badges count completed activities that are not held for review; a badge whose activity a moderator "
           "confirms as irregular, or that a crop or a deletion takes below the mark, is withdrawn. "
           f"Weeks run Monday to Sunday in your time zone ({ui.plain(b['time_zone'])}; change it in Settings).")

st.subheader("Earned")
if not b["earned"]:
    st.info("No badge yet: your first activity earns one.")
cols = st.columns(3)
for i, e in enumerate(b["earned"]):
    with cols[i % 3].container(border=True, key=f"badge_{e['code']}"):
        st.markdown(f"### :material/{e['icon']}: {ui.plain(e['name'])}")
        st.caption(f"{ui.plain(e['description'])} · {units.when(e['earned_at'])}")
        if e["activity_id"]:
            st.page_link("views/activity.py", label="The activity", icon=":material/route:",
                         query_params={"id": str(e["activity_id"])})

if b["withdrawn"]:
    st.subheader("Withdrawn")
    for w in b["withdrawn"]:
        st.markdown(f":material/{w['icon']}: {ui.strong(w['name'])} · {units.when(w['withdrawn_at'])}: "
                    f"{ui.plain(w['reason'])}")

st.subheader("Next")
for n in b["next"][:NEXT_SHOWN]:
    st.progress(n["share"], text=f":material/{n['icon']}: **{ui.plain(n['name'])}** · {ui.plain(n['description'])} "
                                  f"· {ui.plain(n['left'])}")
if len(b["next"]) > NEXT_SHOWN:
    with st.expander(f"{len(b['next']) - NEXT_SHOWN} more"):
        for n in b["next"][NEXT_SHOWN:]:
            st.markdown(f":material/{n['icon']}: {ui.strong(n['name'])} · {ui.plain(n['description'])} · "
                        f"{ui.plain(n['left'])}")

st.subheader("Streak calendar")
today = datetime.now(ZoneInfo(b["time_zone"])).date()
this_week = today - timedelta(days=today.weekday())
weeks = [this_week - timedelta(weeks=k) for k in range(WEEKS_SHOWN - 1, -1, -1)]
counts = [b["weeks"].get(w, 0) for w in weeks]
fig = go.Figure(go.Bar(x=[w.isoformat() for w in weeks], y=counts,
                       marker_color=["#fc4c02" if c else "#d9d9de" for c in counts],
                       hovertemplate="week of %{x}: %{y} activities<extra></extra>"))
fig.update_layout(height=260, margin={"l": 10, "r": 10, "t": 10, "b": 10}, yaxis_title="activities",
                  xaxis_title="week (Monday)", yaxis_rangemode="tozero", bargap=0.15)
ui.plotly_chart(fig)
st.caption(f"The last {WEEKS_SHOWN} weeks; a week with an activity keeps the streak going.")
