"""Live: activities in progress right now (yours, and those of athletes you follow), with
their positions and live stats, refreshing every few seconds."""

import streamlit as st
from streamlit_folium import st_folium

from core import units
from dashboard import data, ui
from dashboard.maps import live_map

v = ui.viewer()
st.title("Live")
st.caption("Activities being recorded now by you and the athletes you follow. Refreshes every 5 seconds.")


@st.fragment(run_every=5)
def live_panel() -> None:
    rows = data.live(v.id)
    if not rows:
        st.info("Nobody you follow is recording right now.")
        return
    # Names and titles go to the map as data and show as written in its tooltips
    # (dashboard.maps.live_map); the map is drawn again when anyone has moved.
    athletes = [(r["position"][0], r["position"][1], ui.who(r["athlete"], r["username"]), r["title"] or "Untitled")
                for r in rows if r["position"]]
    if athletes:
        st_folium(live_map(athletes), height=380, use_container_width=True, returned_objects=[], key="live_map")
    for r in rows:
        stats = r["stats"]
        with st.container(border=True, key=f"live_{r['id']}"):
            st.markdown(f"{ui.strong(ui.who(r['athlete'], r['username']))} · {ui.SPORT_ICON.get(r['sport'], '')} "
                        f"{ui.plain(r['title']) or 'Untitled'} · *{r['status']}*")
            if stats is None:  # its athlete hides part of every activity: the figures come once it is done
                st.caption("Recording now. Its figures show once the activity is complete.")
                continue
            c = st.columns(4)
            c[0].metric("Elapsed", units.duration(stats["elapsed_s"]))
            c[1].metric("Distance", units.distance(stats["distance_m"], v.units))
            c[2].metric({"pace": "Now", "speed": "Speed now"}[units.pace_or_speed_word(r["sport"])],
                        units.pace_or_speed(r["sport"], stats["current_speed_mps"], v.units))
            c[3].metric("Average", units.pace_or_speed(r["sport"], stats["avg_speed_mps"], v.units))


live_panel()
