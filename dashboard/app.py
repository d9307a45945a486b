"""The dashboard's entry script: ``streamlit run dashboard/app.py``.

It signs the visitor in (or shows the sign-in page), then builds the navigation from the
pages the signed-in user's role may see; a page not in the navigation cannot be reached by
URL either. The sign-in and the role are checked against the database on every run, so a
session ended elsewhere or a changed role takes effect on the next click. The views live in
``dashboard/views``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from datetime import UTC, datetime  # noqa: E402

import streamlit as st  # noqa: E402

from core.challenges import engagement  # noqa: E402
from dashboard import auth, data, ui  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="Tracker", page_icon=":material/directions_run:", layout="wide", initial_sidebar_state="auto")

viewer = auth.current_viewer()  # one indexed query per run; see dashboard/auth.py
if viewer is None:
    page = st.navigation([st.Page(auth.sign_in_page, title="Sign in", icon=":material/login:",
                                  url_path="signin", default=True)], position="hidden")
    page.run()
    st.stop()

ATHLETE_PAGES = {
    "": [
        st.Page(VIEWS / "feed.py", title="Feed", icon=":material/dynamic_feed:", url_path="feed", default=True),
        st.Page(VIEWS / "activity.py", title="Activity", icon=":material/route:", url_path="activity",
                visibility="hidden"),
        st.Page(VIEWS / "live.py", title="Live", icon=":material/sensors:", url_path="live"),
    ],
    "You": [
        st.Page(VIEWS / "stats.py", title="My stats", icon=":material/insights:", url_path="stats"),
        st.Page(VIEWS / "challenges.py", title="Challenges", icon=":material/military_tech:", url_path="challenges"),
        st.Page(VIEWS / "upload.py", title="Upload", icon=":material/upload_file:", url_path="upload"),
        st.Page(VIEWS / "settings.py", title="Settings", icon=":material/settings:", url_path="settings"),
    ],
    "Community": [
        st.Page(VIEWS / "athletes.py", title="Athletes", icon=":material/group:", url_path="athletes"),
        st.Page(VIEWS / "discover.py", title="Discover", icon=":material/explore:", url_path="discover"),
        st.Page(VIEWS / "leaderboards.py", title="Leaderboards", icon=":material/leaderboard:",
                url_path="leaderboards"),
    ],
}

# Moderators get the review queue and the storage tiers; for anyone else they are not pages
# at all, so their URLs lead to the feed.
PAGES = dict(ATHLETE_PAGES)
if viewer.role == "moderator":
    PAGES["Moderation"] = [st.Page(VIEWS / "moderation.py", title="Flagged activities", icon=":material/flag:",
                                   url_path="moderation"),
                           st.Page(VIEWS / "storage.py", title="Storage tiers", icon=":material/archive:",
                                   url_path="storage")]

# A visit a day per browser session, counted for the engagement signals: best effort, a
# failure (a database busy past its timeout) is logged and the page goes on.
today = datetime.now(UTC).date()
if st.session_state.get("visit_day") != today:
    st.session_state.visit_day = today
    engagement.record_safely(data.sessions(), viewer.id, visits=1, day=today)

page = st.navigation(PAGES, position="sidebar")
with st.sidebar:
    st.markdown(f"Signed in as {ui.strong(ui.who(viewer.name, viewer.username))}" + (" · moderator" if viewer.role == "moderator" else ""))
    if st.button("Sign out", icon=":material/logout:", key="sign_out"):
        auth.sign_out()
        st.rerun()
auth.flush_cookie()
page.run()
