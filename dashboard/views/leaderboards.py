"""Leaderboards: distance this week, this month and all time, per sport, global or among the
athletes you follow, with your own rank even outside the top."""

import plotly.graph_objects as go
import streamlit as st

from core import units
from core.activities.tables import SPORTS
from core.social.leaderboards import PERIODS, REFRESH_EVERY_S, SCOPES
from core.social.privacy import hidings_of, plain
from dashboard import data, escape, ui

# What each of core's boards is called on the page.
PERIOD_LABELS = {"week": "This week", "month": "This month", "all": "All time"}
SPORT_LABELS = {"run": "Run", "ride": "Ride"}
SCOPE_LABELS = {"global": "Everyone", "friends": "Athletes I follow"}

v = ui.viewer()
unit_m = units.unit_length_m(v.units)
unit = units.distance_unit(v.units)
st.title("Leaderboards")

c1, c2, c3 = st.columns(3)
period = c1.segmented_control("Period", PERIODS, default=PERIODS[0], key="lb_period",
                              format_func=lambda x: PERIOD_LABELS.get(x, x)) or PERIODS[0]
sport = c2.segmented_control("Sport", SPORTS, default=SPORTS[0], key="lb_sport",
                             format_func=lambda x: SPORT_LABELS.get(x, x)) or SPORTS[0]
scope = c3.segmented_control("Among", SCOPES, default=SCOPES[0], key="lb_scope",
                             format_func=lambda x: SCOPE_LABELS.get(x, x)) or SCOPES[0]

board = data.board(period, sport, scope, v.id, 10)
st.caption(f"{board.athletes} athletes ranked · refreshed every {REFRESH_EVERY_S // 60} minutes"
           + (" (Redis)" if board.source == "redis" else ""))
with data.sessions()() as s:
    my_hiding = hidings_of(s, [v.id])[v.id]
if not plain(my_hiding):
    st.caption("You hide part of your activities from others (Settings): boards count the distance others are "
               "shown of each, so that a total tells nothing of the hidden part. A new activity counts once the "
               "worker has worked that out, usually within a minute.")
if not board.entries:
    st.info("No activities on this board yet.")
    st.stop()

if board.me is not None:
    st.metric("Your rank", f"#{board.me.rank} of {board.athletes}")
    st.caption(f"You: {board.me.distance_m / unit_m:.1f} {unit}")
else:
    st.caption(f"You have no {sport}s on this board yet.")

lines = list(board.entries)
if board.me is not None and board.me.rank > len(lines):
    lines.append(board.me)
names = [ui.who(e.name, e.username) for e in lines]
# Plotly reads a few HTML tags in labels: names are escaped so they show as written.
labels = [f"#{e.rank} {escape.plotly_text(ui.abbreviate(name, ui.CHART_LABEL_CHARS))}"
          for e, name in zip(lines, names)]
colours = ["#fc4c02" if e.user_id == v.id else "#b8b8c0" for e in lines]
fig = go.Figure(go.Bar(x=[e.distance_m / unit_m for e in lines], y=labels, orientation="h", marker_color=colours,
                       text=[f"{e.distance_m / unit_m:.1f}" for e in lines], textposition="auto"))
fig.update_layout(height=60 + 34 * len(lines), margin={"l": 10, "r": 10, "t": 10, "b": 10},
                  yaxis={"autorange": "reversed"}, xaxis_title=f"distance ({unit})")
ui.plotly_chart(fig)
mine = next((k for k, e in enumerate(lines) if e.user_id == v.id), None)
ui.table([{"rank": e.rank, "athlete": name, f"distance ({unit})": f"{e.distance_m / unit_m:.1f}",
           "": "you" if e.user_id == v.id else ""} for e, name in zip(lines, names)], highlight=mine)
