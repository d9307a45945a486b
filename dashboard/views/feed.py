"""News feed: the athlete's and followed athletes' completed activities, newest first."""

import streamlit as st

from core.accounts.users import user_by_id
from core.activities.lifecycle import ActivityError
from core.social.comments import SocialError, add_comment, comments_for, delete_comment
from core.social.kudos import give_kudos, kudos_for, take_back_kudos
from core.text import COMMENT_MAX_CHARS
from dashboard import data, ui
from dashboard.queries import preview_svg

PAGE = 10
v = ui.viewer()
st.title("Feed")

pages = st.session_state.setdefault("feed_pages", 1)
items, cursor = [], None
for _ in range(pages):
    page = data.feed(v.id, cursor, PAGE)
    items.extend(page["items"])
    cursor = page["next_cursor"]
    if cursor is None:
        break

if not items:
    st.info("Nothing here yet: record an activity, upload a file, or follow other athletes.")

ids = [c["id"] for c in items]
with data.sessions()() as s:
    kudos = kudos_for(s, v.id, ids)
    comments = comments_for(s, ids, v.id)


def act(fn, *args) -> None:
    """Run a kudos or comment change; say why if it is refused."""
    try:
        with data.sessions()() as s, s.begin():
            fn(s, user_by_id(s, v.id), *args)
    except (SocialError, ActivityError) as exc:
        st.session_state.feed_error = str(exc)


if err := st.session_state.pop("feed_error", None):
    st.error(err)

for c in items:
    with st.container(border=True, key=f"card_{c['id']}"):
        left, right = st.columns([1, 4], vertical_alignment="center")
        with left:
            svg = preview_svg(data.route_preview(v.id, c["id"]))
            if svg:
                st.image(svg, width=120)
        with right:
            st.markdown(f"{ui.strong(ui.who(c['athlete'], c['username']))} · {ui.SPORT_ICON.get(c['sport'], '')} "
                        f"{ui.when(c['start_time'])}" + (" · :material/lock: only you" if c["visibility"] == "private" else ""))
            st.page_link("views/activity.py", label=ui.plain(c["title"]) or "Untitled", query_params={"id": c["id"]},
                         icon=":material/route:")
            st.markdown(" · ".join(f"{label} **{value}**" for label, value in ui.headline_figures(c, v.units)))
            if c.get("challenges"):
                st.markdown(ui.challenges_line(c["challenges"], v.units))
            if c.get("badges"):
                st.markdown(ui.badges_line(c["badges"]))
        count, mine = kudos[c["id"]]
        k1, k2 = st.columns([1.3, 4])
        with k1:
            if c["user_id"] == v.id:
                st.caption(f":material/thumb_up: {count} kudos")
            elif mine:
                st.button(f"Kudos {count} · undo", icon=":material/thumb_up:", key=f"unkudos_{c['id']}", on_click=act,
                          args=(take_back_kudos, c["id"]))
            else:
                st.button(f"Kudos {count}", icon=":material/thumb_up_off_alt:", key=f"kudos_{c['id']}", on_click=act,
                          args=(give_kudos, c["id"]))
        with k2:
            n_comments = len(comments[c["id"]])
            with st.expander(f"{n_comments} comment{'' if n_comments == 1 else 's'}", icon=":material/chat_bubble:",
                             expanded=st.session_state.get("open_card") == c["id"]):
                for cm in comments[c["id"]]:
                    line, action = st.columns([6, 1])
                    line.markdown(f"{ui.strong(cm.author)} {ui.plain(cm.text)}")
                    if cm.user_id == v.id or c["user_id"] == v.id:
                        action.button("Delete", key=f"delc_{cm.id}", on_click=act,
                                      args=(delete_comment, cm.id))
                with st.form(f"comment_{c['id']}", clear_on_submit=True, border=False):
                    text = st.text_input("Add a comment", key=f"ctext_{c['id']}", max_chars=COMMENT_MAX_CHARS)
                    if st.form_submit_button("Post"):
                        act(add_comment, c["id"], text)
                        st.session_state.open_card = c["id"]
                        st.rerun()

if cursor is not None:
    if st.button("Load more", key="feed_more"):
        st.session_state.feed_pages = pages + 1
        st.rerun()
elif items:
    st.caption("You have reached the end of your feed.")
