"""Live: activities in progress right now (yours, and those of athletes you follow), with
their positions and live stats, refreshing every few seconds."""

import streamlit as st
from streamlit_folium import st_folium

from dashboard import data, fmt, ui
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
    positions = [(r["position"][0], r["position"][1], f"{r['athlete']}: {r['title']}")
                 for r in rows if r["position"]]
    if positions:
        st_folium(live_map(positions), height=380, use_container_width=True, returned_objects=[],
                  key=f"live_map_{len(positions)}")
    for r in rows:
        stats = r["stats"]
        with st.container(border=True):
            st.markdown(f"**{ui.plain(r['athlete'])}** · {fmt.SPORT_ICON.get(r['sport'], '')} "
                        f"{ui.plain(r['title'])} · *{r['status']}*")
            c = st.columns(4)
            c[0].metric("Elapsed", fmt.duration(stats["elapsed_s"]))
            c[1].metric("Distance", fmt.distance(stats["distance_m"], v.units))
            c[2].metric("Now" if r["sport"] == "run" else "Speed now",
                        fmt.pace_or_speed(r["sport"], stats["current_speed_mps"], v.units))
            c[3].metric("Average", fmt.pace_or_speed(r["sport"], stats["avg_speed_mps"], v.units))


live_panel()
