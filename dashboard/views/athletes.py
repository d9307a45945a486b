"""Athletes: find people by name, follow and unfollow them (their shared activities then
appear in your feed, live view and friends' leaderboards)."""

import streamlit as st

from core.accounts.users import user_by_id
from core.social.follows import SEARCH_MAX_CHARS, follow, unfollow
from dashboard import data, queries, ui

v = ui.viewer()
st.title("Athletes")


def change(other_id: int, on: bool) -> None:
    with data.sessions()() as s, s.begin():
        me, other = user_by_id(s, v.id), user_by_id(s, other_id)
        if other is not None:
            (follow if on else unfollow)(s, me, other)
    data.forget_activity_lists()
    data.live.clear()


query = st.text_input("Find athletes by name or username", key="athlete_query", max_chars=SEARCH_MAX_CHARS,
                      placeholder="e.g. rosa")
if query.strip():
    with data.sessions()() as s:
        found = queries.search_athletes(s, v.id, query)
    if not found:
        st.info("Nobody by that name.")
    for a in found:
        c1, c2 = st.columns([4, 1], vertical_alignment="center")
        c1.markdown(f"{ui.strong(a['name'])} · @{ui.plain(a['username'])}")
        if a["following"]:
            c2.button("Unfollow", key=f"unfollow_{a['id']}", on_click=change, args=(a["id"], False))
        else:
            c2.button("Follow", key=f"follow_{a['id']}", on_click=change, args=(a["id"], True), type="primary")

with data.sessions()() as s:
    lists = queries.follow_lists(s, v.id)
count, followers = len(lists["following"]), lists["followers"]
st.subheader(f"You follow {count} athlete{'' if count == 1 else 's'}")
st.caption(f"{followers} athlete{' follows' if followers == 1 else 's follow'} you.")
for a in lists["following"]:
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.markdown(f"{ui.plain(a['name'])} · @{ui.plain(a['username'])}")
    c2.button("Unfollow", key=f"unfollow_list_{a['id']}", on_click=change, args=(a["id"], False))
