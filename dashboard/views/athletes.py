"""Athletes: find people by name, follow them (or ask to, when they approve their followers),
block them, and see who follows you (their shared activities then appear in your feed, live
view and friends' leaderboards). Requests to follow you and whom you blocked are in Settings."""

import streamlit as st

from core.accounts.users import user_by_id
from core.social.follows import (
    SEARCH_MAX_CHARS,
    FollowRefused,
    block,
    follow,
    remove_follower,
    unblock,
    unfollow,
)
from dashboard import data, queries, ui

v = ui.viewer()
st.title("Athletes")

ACTIONS = {"unfollow": unfollow, "block": block, "unblock": unblock}
DONE = {"following": "Following {who}.", "requested": "Asked to follow {who}: they approve their followers.",
        "unfollow": "No longer following {who}.", "block": "Blocked {who}: they see nothing of yours now.",
        "unblock": "Unblocked {who}.", "remove": "{who} no longer follows you."}


def change(other_id: int, action: str) -> None:
    """Follow, unfollow (or withdraw a request), block, unblock or remove a follower."""
    try:
        with data.sessions()() as s, s.begin():
            me, other = user_by_id(s, v.id), user_by_id(s, other_id)
            if other is None:
                return
            who = ui.strong(ui.who(other.name, other.username))
            if action == "remove":
                remove_follower(s, me, other.id)
                result = action
            elif action == "follow":
                result = follow(s, me, other)
            else:
                ACTIONS[action](s, me, other)
                result = action
    except FollowRefused as exc:
        st.session_state.athletes_error = f"Not done: {ui.plain(str(exc))}."
        return
    st.session_state.athletes_notice = DONE[result].format(who=who)
    data.forget_activity()  # what was cached for either of them may no longer be theirs to see
    data.forget_suggestions()
    data.live.clear()


if notice := st.session_state.pop("athletes_notice", None):
    st.success(notice)
if err := st.session_state.pop("athletes_error", None):
    st.error(err)

query = st.text_input("Find athletes by name or username", key="athlete_query", max_chars=SEARCH_MAX_CHARS,
                      placeholder="e.g. rosa")
if query.strip():
    with data.sessions()() as s:
        found = queries.search_athletes(s, v.id, query)
    if not found:
        st.info("Nobody by that name.")
    for a in found:
        c1, c2, c3 = st.columns([4, 1, 1], vertical_alignment="center")
        c1.markdown(f"{ui.strong(a['name'])} · @{ui.plain(a['username'])}")
        state, key = a["state"], a["id"]
        if state == "blocked":
            c1.caption("Blocked: they see nothing of yours.")
            c3.button("Unblock", key=f"unblock_{key}", on_click=change, args=(key, "unblock"))
            continue
        if state == "following":
            c2.button("Unfollow", key=f"unfollow_{key}", on_click=change, args=(key, "unfollow"))
        elif state == "requested":
            c1.caption("Requested: waiting for them to approve you.")
            c2.button("Cancel request", key=f"cancel_{key}", on_click=change, args=(key, "unfollow"))
        else:
            c2.button("Follow", key=f"follow_{key}", on_click=change, args=(key, "follow"), type="primary")
        c3.button("Block", key=f"block_{key}", on_click=change, args=(key, "block"), icon=":material/block:")

with data.sessions()() as s:
    lists = queries.follow_lists(s, v.id)
count, followers = len(lists["following"]), lists["followers"]
st.subheader(f"You follow {count} athlete{'' if count == 1 else 's'}")
st.caption(f"{followers} athlete{' follows' if followers == 1 else 's follow'} you.")
for a in lists["following"]:
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.markdown(f"{ui.plain(a['name'])} · @{ui.plain(a['username'])}")
    c2.button("Unfollow", key=f"unfollow_list_{a['id']}", on_click=change, args=(a["id"], "unfollow"))

st.subheader("Your followers")
if not lists["follower_list"]:
    st.caption("Nobody follows you yet.")
for a in lists["follower_list"]:
    c1, c2 = st.columns([4, 1], vertical_alignment="center")
    c1.markdown(f"{ui.plain(a['name'])} · @{ui.plain(a['username'])}")
    c2.button("Remove", key=f"remove_follower_{a['id']}", on_click=change, args=(a["id"], "remove"),
              help="They stop following you and may ask again; block them to keep them away.")
if lists["requests"]:
    n = len(lists["requests"])
    st.page_link("views/settings.py", label=f"{n} request{'' if n == 1 else 's'} to follow you: answer in Settings",
                 icon=":material/person_add:")
