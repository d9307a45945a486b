"""Discover: routes other athletes share that you might like (with why), the ones you saved,
rating a route you completed, and athletes to train with. What suggestions start from for an
athlete with little history is the short question in Settings."""

import streamlit as st
from streamlit_folium import st_folium

from core import units
from core.recommend.service import SignalError
from core.routes.matching import KIND_WORDS
from core.social.follows import FollowRefused
from core.text import is_blank
from dashboard import data, queries, ui
from dashboard.maps import route_sketch

SUGGESTED = 10
STARS = (1, 2, 3, 4, 5)
UNNAMED = "Unnamed route"

v = ui.viewer()
st.title("Discover")
st.caption("Routes other athletes share publicly near where you start, and athletes who train like you. "
           "What you save, rate or mark as not for you shapes what comes next.")


def signal(route_id: int, kind: str, done: str) -> None:
    """Save a route or mark it "not for me" (a button's callback: the page then runs again)."""
    try:
        data.route_signal(v.id, route_id, kind)
    except SignalError as exc:
        st.session_state.discover_error = f"Not recorded: {exc}."
    else:
        st.session_state.discover_notice = done


def unsave(route_id: int) -> None:
    data.take_back_route_signal(v.id, route_id, "save")
    st.session_state.discover_notice = "Removed from your saved routes."


def rate(names: dict[int, str]) -> None:
    """Store the chosen stars for the chosen route (the rating form's callback)."""
    route_id, stars = st.session_state.get("rate_route"), st.session_state.get("rate_stars")
    if route_id is None:
        st.session_state.rate_error = "Choose a route to rate."
        return
    try:
        data.route_signal(v.id, route_id, "rating", stars)
    except SignalError as exc:
        st.session_state.rate_error = f"Rating not saved: {exc}."
    else:
        st.session_state.rate_notice = (f"Rated {ui.strong(names.get(route_id, UNNAMED))} "
                                        f"{stars} star{'' if stars == 1 else 's'}.")


def befriend(other_id: int) -> None:
    try:
        state = data.follow_athlete(v.id, other_id)
    except FollowRefused as exc:
        st.session_state.discover_error = f"Not followed: {ui.plain(str(exc))}."
        return
    st.session_state.discover_notice = (
        "Followed: their shared activities now appear in your feed." if state == "following" else
        "Request sent: they approve their followers, and their shared activities appear in your feed once "
        "they accept.")


def name_of(route: dict) -> str:
    """A route's name as written, or "Unnamed route" when it would show nothing."""
    return UNNAMED if is_blank(route["name"]) else route["name"]


def sentence(text: str) -> str:
    """A reason from ``core`` (plain words, maybe naming a route) as a sentence, shown literally."""
    text = (text or "").strip()
    return ui.plain(text[:1].upper() + text[1:])


def figures(route: dict) -> str:
    parts = [units.distance(route["distance_m"], v.units, digits=1),
             f"{units.elevation(route['elevation_gain_m'], v.units)} climbing",
             KIND_WORDS.get(route["kind"], route["kind"])]
    if route["athletes"]:
        parts.append(f"done by {route['athletes']} athlete{'' if route['athletes'] == 1 else 's'}")
    return " · ".join(parts)


def route_card(route: dict, where: str):
    """A route's card: its line on a small map, name, figures; returns the column for its
    reason and buttons."""
    box = st.container(border=True, key=f"{where}_{route['id']}")
    left, right = box.columns([1, 1], vertical_alignment="center")
    with left:
        if len(route["polyline"]) >= 2:
            st_folium(route_sketch(route["polyline"]), height=220, use_container_width=True, returned_objects=[],
                      key=f"{where}_map_{route['id']}")
    with right:
        st.markdown(ui.strong(name_of(route)))
        st.markdown(figures(route))
    return right


if notice := st.session_state.pop("discover_notice", None):
    st.success(notice)
if err := st.session_state.pop("discover_error", None):
    st.error(err)

st.subheader("Suggested routes")
found = data.route_suggestions(v.id, SUGGESTED)
if not found["routes"]:
    if found["located"]:
        st.info("Nothing new to suggest near where you start: suggestions come from routes other athletes "
                "share publicly, and you have done, saved or set aside the ones nearby. Telling us your usual "
                "distance and whether you like hills, in Settings, widens the choice.")
    else:
        st.info("Nothing to suggest yet: we do not know where you run or ride. Record or upload an activity, "
                "or answer the short question in Settings (your sport, usual distance, hills or flat, and "
                "the area you start from), and suggestions appear here.")
    st.page_link("views/settings.py", label="Answer the route question in Settings", icon=":material/settings:")
for route in found["routes"]:
    right = route_card(route, "suggestion")
    right.caption(sentence(route["reason"]))
    c1, c2 = right.columns(2)
    c1.button("Save", key=f"save_{route['id']}", icon=":material/bookmark_add:", on_click=signal,
              args=(route["id"], "save", "Saved: the route is in your saved routes below."))
    c2.button("Not for me", key=f"dismiss_{route['id']}", icon=":material/thumb_down_off_alt:", on_click=signal,
              args=(route["id"], "dismiss", "Set aside: that route will not be suggested again."))

with data.sessions()() as s:
    saved = queries.saved_routes(s, v.id)
    completed = queries.completed_routes(s, v.id)

st.subheader("Saved routes")
if not saved:
    st.caption("Save a suggested route to keep it here.")
for route in saved:
    right = route_card(route, "saved")
    right.button("Unsave", key=f"unsave_{route['id']}", icon=":material/bookmark_remove:", on_click=unsave,
                 args=(route["id"],))

st.subheader("Rate a route you completed")
if notice := st.session_state.pop("rate_notice", None):
    st.success(notice)
if err := st.session_state.pop("rate_error", None):
    st.error(err)
if not completed:
    st.caption("Once one of your activities follows a route other athletes share, you can rate it here; "
               "ratings shape what is suggested to you and to others.")
else:
    # The options are plain text in a select box: the names as written, unescaped.
    names = {r["id"]: name_of(r) for r in completed}
    labels = {r["id"]: f"{names[r['id']]} · {units.distance(r['distance_m'], v.units, digits=1)} · "
                       f"{r['times']} time{'' if r['times'] == 1 else 's'}" for r in completed}
    with st.form("rate_form"):
        st.selectbox("Route", list(labels), format_func=labels.get, key="rate_route")
        st.radio("Stars", STARS, format_func=lambda n: "★" * n + "☆" * (len(STARS) - n), horizontal=True,
                 index=None, key="rate_stars")
        st.form_submit_button("Rate", icon=":material/star:", on_click=rate, args=(names,))

st.subheader("Suggested athletes")
people = data.athlete_suggestions(v.id)
if not people:
    st.caption("No athletes to suggest yet: suggestions come from athletes on your routes or near where you "
               "start, and from those the athletes you follow follow.")
for a in people:
    with st.container(border=True, key=f"athlete_{a['id']}"):
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.markdown(f"{ui.strong(ui.who(a['name'], a['username']))} · @{ui.plain(a['username'])}")
        c1.caption(sentence(a["reason"]))
        c2.button("Follow", key=f"suggested_follow_{a['id']}", icon=":material/person_add:", on_click=befriend,
                  args=(a["id"],), type="primary")
