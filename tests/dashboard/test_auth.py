"""Sign-in that follows the account, through Streamlit's AppTest on the demo world's SQLite file.

Each test signs in through the real form, then changes the account in the database the way
another tab or an administrator would, and checks what the next run of the same tab shows.
A browser signed in through OpenID Connect is a tab whose ``st.user`` holds the provider's
identity (AppTest's ``user``), as Streamlit's own sign-on cookie would give it.
"""

from __future__ import annotations

import itertools
import time

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from streamlit.testing.v1 import AppTest

from core.accounts.sessions import end_all_web_sessions
from core.accounts.tables import LoginAttempt, WebSession
from core.accounts.users import authenticate, create_user, user_by_name
from core.storage.engine import make_engine
from dashboard.auth import IDENTITY_ENDED_NOTICE
from tests.dashboard.conftest import APP

PASSWORD = "right password"
OIDC_SECRETS = {"auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "not a secret",
                         "client_id": "tracker", "client_secret": "not a secret either",
                         "server_metadata_url": "https://accounts.example.org/.well-known/openid-configuration"}}
_names = itertools.count(1)


@pytest.fixture
def db(world):
    """A session factory on the world's database; the sign-in throttle is emptied around each test.

    Every AppTest run comes from the same unknown address, so failures left by one test
    would count against the next (and against the browser tests' sign-ins)."""
    engine = make_engine(world.url)

    def clear_attempts():
        with Session(engine) as s, s.begin():
            s.execute(delete(LoginAttempt))

    clear_attempts()
    yield lambda: Session(engine, expire_on_commit=False)
    clear_attempts()
    engine.dispose()


def new_account(db, role: str = "athlete") -> str:
    """A fresh account of its own, so that changing it leaves the shared demo users alone;
    its e-mail address is ``<username>@example.org``."""
    username = f"auth_{role}_{next(_names)}"
    with db() as s, s.begin():
        create_user(s, username, name=username.title(), password=PASSWORD, role=role,
                    email=f"{username}@example.org")
    return username


def submit_sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="signin_username").input(username)
    at.text_input(key="signin_password").input(password)
    next(b for b in at.get("form_submit_button") if b.label == "Sign in").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def signed_in_tab(username: str) -> AppTest:
    """A new tab that signs in through the form."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    submit_sign_in(at, username, PASSWORD)
    assert at.session_state["viewer"].username == username
    return at


def provider_tab(username: str, issued_at: int) -> AppTest:
    """A new tab in a browser holding the organisation's identity for ``username``, issued
    (the ID token's ``iat``) at ``issued_at``."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.secrets.update(OIDC_SECRETS)
    at.user = {"is_logged_in": True, "email": f"{username}@example.org", "email_verified": True,
               "name": username.title(), "iat": issued_at}
    return rerun(at)


def rerun(at: AppTest, page: str | None = None) -> AppTest:
    if page:
        at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def shows_sign_in_form(at: AppTest) -> bool:
    return any(t.key == "signin_username" for t in at.text_input)


def test_a_demoted_moderator_loses_the_flagged_activities_page_on_the_next_run(db):
    username = new_account(db, role="moderator")
    at = signed_in_tab(username)
    assert titles(rerun(at, "views/moderation.py")) == ["Flagged activities"]
    with db() as s, s.begin():
        user_by_name(s, username).role = "athlete"
    rerun(at, "views/moderation.py")
    assert "Flagged activities" not in titles(at)
    assert at.session_state["viewer"].role == "athlete"
    assert not any("moderator" in md.value for md in at.sidebar.markdown)


def test_a_session_ended_in_the_database_signs_the_tab_out_on_the_next_run(db):
    username = new_account(db)
    at = signed_in_tab(username)
    assert titles(rerun(at, "views/feed.py")) == ["Feed"]
    with db() as s, s.begin():
        assert end_all_web_sessions(s, user_by_name(s, username)) == 1
    rerun(at)
    assert shows_sign_in_form(at)
    assert "viewer" not in at.session_state
    assert any("You were signed out" in i.value for i in at.info)


def test_an_expired_session_signs_the_tab_out(db):
    from datetime import UTC, datetime, timedelta

    username = new_account(db)
    at = signed_in_tab(username)
    with db() as s, s.begin():
        user_id = user_by_name(s, username).id
        for row in s.scalars(select(WebSession).where(WebSession.user_id == user_id)):
            row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    rerun(at)
    assert shows_sign_in_form(at)


def test_five_wrong_passwords_then_even_the_right_one_gets_the_wait(db):
    username = new_account(db)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    for _ in range(5):
        submit_sign_in(at, username, "wrong password")
        assert [e.value for e in at.error] == ["Wrong username or password."]
    submit_sign_in(at, username, PASSWORD)
    assert [e.value for e in at.error] == ["Too many failed sign-ins: try again in 15 minutes."]
    assert "viewer" not in at.session_state


def test_sign_out_everywhere_in_settings_signs_out_every_tab(db):
    username = new_account(db)
    here, there = signed_in_tab(username), signed_in_tab(username)
    rerun(here, "views/settings.py")
    next(b for b in here.button if b.label == "Sign out everywhere").click()
    rerun(here)
    assert shows_sign_in_form(here)
    rerun(there)
    assert shows_sign_in_form(there)
    with db() as s:
        user_id = user_by_name(s, username).id
        assert s.scalars(select(WebSession).where(WebSession.user_id == user_id)).first() is None


def test_a_password_change_in_settings_signs_out_the_other_tabs_only(db):
    username = new_account(db)
    here, there = signed_in_tab(username), signed_in_tab(username)
    rerun(here, "views/settings.py")
    here.text_input(key="current_password").input(PASSWORD)
    here.text_input(key="new_password").input("a new password")
    here.text_input(key="new_password_again").input("a new password")
    next(b for b in here.get("form_submit_button") if b.label == "Change password").click()
    rerun(here)
    assert any(s.value == "Password changed; signed out of 1 other browser." for s in here.success)
    assert titles(rerun(here, "views/feed.py")) == ["Feed"]
    rerun(there)
    assert shows_sign_in_form(there)
    with db() as s:
        assert authenticate(s, username, "a new password") is not None


def test_sign_out_everywhere_turns_away_a_browser_that_holds_the_organisations_identity(db):
    username = new_account(db)
    issued = int(time.time()) - 60
    here = provider_tab(username, issued)
    assert here.session_state["viewer"].username == username
    rerun(here, "views/settings.py")
    next(b for b in here.button if b.label == "Sign out everywhere").click()
    rerun(here)
    assert shows_sign_in_form(here)
    # Another browser still holds the provider's identity from before: it is not let back in.
    there = provider_tab(username, issued)
    assert shows_sign_in_form(there)
    assert "viewer" not in there.session_state
    assert [i.value for i in there.info] == [IDENTITY_ENDED_NOTICE]
    assert there.user.get("is_logged_in") is False  # st.logout() forgot the identity
    # Signing in again with the organisation gives a new identity, which is let in.
    assert provider_tab(username, int(time.time()) + 1).session_state["viewer"].username == username


def test_a_password_change_turns_away_the_organisations_identity_in_other_browsers_only(db):
    username = new_account(db)
    issued = int(time.time()) - 60
    assert provider_tab(username, issued).session_state["viewer"].username == username
    here = signed_in_tab(username)
    rerun(here, "views/settings.py")
    here.text_input(key="current_password").input(PASSWORD)
    here.text_input(key="new_password").input("a new password")
    here.text_input(key="new_password_again").input("a new password")
    next(b for b in here.get("form_submit_button") if b.label == "Change password").click()
    rerun(here)
    assert any(s.value.startswith("Password changed") for s in here.success)
    assert titles(rerun(here, "views/feed.py")) == ["Feed"]
    there = provider_tab(username, issued)
    assert shows_sign_in_form(there)
    assert [i.value for i in there.info] == [IDENTITY_ENDED_NOTICE]


def test_a_nul_in_the_username_is_an_ordinary_wrong_sign_in(db):
    username = new_account(db)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    submit_sign_in(at, username + "\x00", "wrong password")
    assert [e.value for e in at.error] == ["Wrong username or password."]
    submit_sign_in(at, "\x00" + username, PASSWORD)
    assert at.session_state["viewer"].username == username


def test_sign_ins_and_visits_are_counted_per_day_for_the_engagement_signals(db):
    """A sign-in counts one sign-in and one visit; more runs of the same tab count nothing
    more; a second tab (another browser session) is another visit."""
    from datetime import UTC, datetime

    from core.challenges.tables import EngagementDay

    username = new_account(db)
    at = signed_in_tab(username)
    rerun(at, "views/stats.py")
    rerun(at, "views/feed.py")
    with db() as s:
        uid = user_by_name(s, username).id
        day = s.get(EngagementDay, (uid, datetime.now(UTC).date()))
        assert (day.sign_ins, day.visits) == (1, 1)
    signed_in_tab(username)
    with db() as s:
        day = s.get(EngagementDay, (uid, datetime.now(UTC).date()))
        assert (day.sign_ins, day.visits) == (2, 2)
