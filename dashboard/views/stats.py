"""My stats: totals per week, month and year (in the athlete's time zone, as challenges and
badges count them), weekly volume, personal bests, and a heatmap of every route on one map."""

import pandas as pd
import plotly.express as px
import streamlit as st
from streamlit_folium import st_folium

from core import units
from core.activities.tables import SPORTS
from dashboard import data, ui
from dashboard.maps import heatmap

v = ui.viewer()
unit_system = v.units
unit_m = units.unit_length_m(unit_system)
unit = units.distance_unit(unit_system)
st.title("My stats")

rows = data.my_activities(v.id)
if not rows:
    st.info("No completed activities yet.")
    st.stop()

zone = v.zone
df = pd.DataFrame(rows)
# Weeks (from Monday), months and years begin at midnight where the athlete lives: the
# times are the athlete's wall-clock times, without a zone, so that calendar days are
# counted as such (a zone whose clocks skip midnight has no midnight to start a day at).
df["start_time"] = pd.to_datetime(df["start_time"], utc=True).dt.tz_convert(zone).dt.tz_localize(None)
df = df.dropna(subset=["start_time"])
df["distance"] = df["distance_m"].fillna(0) / unit_m
df["hours"] = df["moving_time_s"].fillna(0) / 3600
sport = st.segmented_control("Sport", ["all", *SPORTS], default="all", key="stats_sport") or "all"
if sport != "all":
    df = df[df["sport"] == sport]

now = pd.Timestamp.now(tz=zone).tz_localize(None)
spans = {"This week": now.normalize() - pd.Timedelta(days=now.weekday()),
         "This month": now.normalize().replace(day=1),
         "This year": now.normalize().replace(month=1, day=1)}
cols = st.columns(3)
for col, (label, start) in zip(cols, spans.items()):
    part = df[df["start_time"] >= start]
    col.metric(label, f"{part['distance'].sum():.1f} {unit}")
    col.caption(f"{len(part)} activities · {units.duration(part['moving_time_s'].fillna(0).sum())} moving")

st.subheader("Weekly volume")
weekly = (df.set_index("start_time").groupby([pd.Grouper(freq="W-MON", label="left", closed="left"), "sport"])
          ["distance"].sum().reset_index())
weekly = weekly[weekly["start_time"] >= now - pd.Timedelta(weeks=26)]
fig = px.bar(weekly, x="start_time", y="distance", color="sport",
             color_discrete_map={"run": "#fc4c02", "ride": "#2c7bb6"},
             labels={"start_time": "week", "distance": f"distance ({unit})"})
fig.update_layout(height=300, margin={"l": 10, "r": 10, "t": 10, "b": 10}, bargap=0.15)
ui.plotly_chart(fig)

st.subheader("Totals")
monthly = (df.set_index("start_time").groupby(pd.Grouper(freq="MS")).agg(
    activities=("id", "count"), distance=("distance", "sum"), hours=("hours", "sum")).reset_index())
monthly = monthly[monthly["activities"] > 0].sort_values("start_time", ascending=False)
yearly = (df.assign(year=df["start_time"].dt.year).groupby("year")
          .agg(activities=("id", "count"), distance=("distance", "sum"), hours=("hours", "sum"))
          .reset_index().sort_values("year", ascending=False))
t1, t2 = st.tabs(["Per month", "Per year"])
with t1:
    st.dataframe(monthly.assign(month=monthly["start_time"].dt.strftime("%b %Y"))
                 [["month", "activities", "distance", "hours"]].round(1)
                 .rename(columns={"distance": f"distance ({unit})"}), hide_index=True)
with t2:
    st.dataframe(yearly.round(1).rename(columns={"distance": f"distance ({unit})"}), hide_index=True)

st.subheader("Personal bests")
all_rows = pd.DataFrame(rows)
if all_rows["held"].any():  # a flagged activity's figures are no record until a moderator clears it
    held = int(all_rows["held"].sum())
    st.caption(f"{held} {'activity' if held == 1 else 'activities'} held for review "
               f"{'is' if held == 1 else 'are'} left out.")
    all_rows = all_rows[~all_rows["held"]]
runs, rides = all_rows[all_rows["sport"] == "run"], all_rows[all_rows["sport"] == "ride"]


def best(frame: pd.DataFrame, column: str, smallest: bool = True) -> tuple[str, str]:
    """The best value of ``column`` and, as Markdown, the activity that holds it."""
    frame = frame.dropna(subset=[column])
    if frame.empty:
        return "–", ""
    row = frame.loc[frame[column].idxmin() if smallest else frame[column].idxmax()]
    return row[column], f"{ui.plain(row['title']) or 'Untitled'} · {ui.when(row['start_time'])}"


pb_cols = st.columns(4)
for col, (metres, column) in zip(pb_cols[:3], [(1000, "best_1k_s"), (5000, "best_5k_s"), (10000, "best_10k_s")]):
    value, where = best(runs, column)
    col.metric(f"Fastest {units.effort_name(metres)}", units.duration(value) if value != "–" else "–")
    if where:
        col.caption(where)
value, where = best(rides, "distance_m", smallest=False)
pb_cols[3].metric("Longest ride", units.distance(value, unit_system) if value != "–" else "–")
if where:
    pb_cols[3].caption(where)

st.subheader("Heatmap of my routes")
routes = data.my_routes(v.id, None if sport == "all" else sport)
st.caption(f"{len(routes)} routes; where they overlap the colour deepens.")
st_folium(heatmap(routes), height=460, use_container_width=True, returned_objects=[], key=f"heatmap_{sport}")
