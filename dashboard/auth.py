"""Sign-up, sign-in, sign-out, and a sign-in that survives a page reload.

Local accounts are checked against their scrypt hashes, with failed attempts throttled per
account and per client address (``core.accounts.signin.sign_in``); a successful sign-in starts a
web session whose random secret goes into the ``tracker_session`` cookie (SameSite=Strict;
only its SHA-256 is stored), so a reload finds the athlete again. Every run checks that
session against the database again (one indexed query), so a role change applies on the
next click and a session ended elsewhere (sign out everywhere, a password change, expiry)
signs this tab out. When the operator configures OpenID Connect in
``.streamlit/secrets.toml`` (an ``[auth]`` section), a "Sign in with ..." button uses
``st.login``, and the provider's verified e-mail address is linked to a local account
(created on first sign-in). Streamlit keeps that identity in a cookie of its own, which
would sign a browser in again after "sign out everywhere" or a password change; an identity
issued before those (the ID token's ``iat``) is therefore turned away with ``st.logout``
and the visitor is asked to sign in again.
"""

from __future__ import annotations

import json

import streamlit as st

from core.accounts.sessions import (
    WEB_SESSION_DAYS,
    end_all_web_sessions,
    end_web_session,
    identity_still_valid,
    start_web_session,
    user_for_web_session,
)
from core.accounts.signin import sign_in
from core.accounts.tables import User
from core.accounts.users import AccountError, create_user, user_by_id, user_for_identity
from core.challenges import engagement
from dashboard import data
from dashboard.queries import Viewer, viewer_for

COOKIE = "tracker_session"
ENDED_NOTICE = "You were signed out: this sign-in ended (signed out everywhere, password changed, or expired)."
IDENTITY_ENDED_NOTICE = ("Your sign-in with your organisation's account ended (signed out everywhere or "
                         "password changed): please sign in again.")


def _cookie_script(value: str | None) -> str:
    if value is None:
        assignment = f"{COOKIE}=; path=/; max-age=0; SameSite=Strict"
    else:
        assignment = f"{COOKIE}={value}; path=/; max-age={WEB_SESSION_DAYS * 86400}; SameSite=Strict"
    return ("<script>(function(){var c=" + json.dumps(assignment) +
            ";if(location.protocol==='https:'){c+='; Secure';}document.cookie=c;})();</script>")


def flush_cookie() -> None:
    """Write or clear the session cookie in the browser after a sign-in or sign-out."""
    if "cookie_op" in st.session_state:
        value = st.session_state.pop("cookie_op")
        st.html(_cookie_script(value), unsafe_allow_javascript=True)


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def _sign_in(user: User) -> None:
    with data.sessions()() as s, s.begin():
        secret = start_web_session(s, user_by_id(s, user.id))
    engagement.record_safely(data.sessions(), user.id, sign_ins=1)  # after the sign-in, never failing it
    st.session_state.viewer = viewer_for(user)
    st.session_state.session_secret = secret
    st.session_state.cookie_op = secret
    st.session_state.pop("signed_out", None)


def client_address() -> str | None:
    """The browser's address as the sign-in throttle counts it, or None when Streamlit gives
    none: connections from this machine (127.0.0.1 and ::1, which includes a reverse proxy
    running here). Those are throttled per account only; counting them all as one client
    would let five mistakes by anyone lock everyone out. Anything but text (AppTest's
    stand-in runtime answers with a mock) is no address either."""
    address = getattr(st.context, "ip_address", None)
    return address if isinstance(address, str) and address else None


def _oidc_user() -> User | None:
    email = st.user.get("email")
    if not email or st.user.get("email_verified") is False:
        return None
    try:
        with data.sessions()() as s, s.begin():
            user = user_for_identity(s, email, st.user.get("name"))
            s.expunge(user)
            return user
    except AccountError as exc:
        st.session_state.sign_in_notice = f"Your organisation's account cannot be used here: {exc}."
        return None


def _signed_in_user(secret: str | None, viewer: Viewer | None) -> User | None:
    """The user as stored now for this tab's sign-in, or None if it no longer holds."""
    with data.sessions()() as s:
        if secret:
            user = user_for_web_session(s, secret)
        else:
            # A viewer put into the session state without a web session (as the page tests
            # do) has no session to check; its user is still read afresh for the role.
            user = user_by_id(s, viewer.id)
        if user is not None:
            s.expunge(user)
        return user


def _forget_sign_in(notice: str | None = None) -> None:
    for key in ("viewer", "session_secret"):
        st.session_state.pop(key, None)
    st.session_state.signed_out = True
    st.session_state.cookie_op = None
    if notice:
        st.session_state.sign_in_notice = notice


def current_viewer() -> Viewer | None:
    """The signed-in athlete, checked against the database on every run.

    From this tab's sign-in, the cookie, or the OpenID Connect login. A sign-in that no
    longer holds (ended elsewhere, expired, the account gone) signs the tab out; the role,
    name and units always come from the database, so a demoted moderator loses the
    moderators' page on the next run."""
    viewer = st.session_state.get("viewer")
    if viewer is not None:
        user = _signed_in_user(st.session_state.get("session_secret"), viewer)
        if user is None:
            _forget_sign_in(ENDED_NOTICE)
            return None
        fresh = viewer_for(user)
        if fresh != viewer:
            st.session_state.viewer = fresh
        return fresh
    if st.session_state.get("signed_out"):
        return None
    secret = st.context.cookies.get(COOKIE)
    if isinstance(secret, str) and 0 < len(secret) <= 100:
        user = _signed_in_user(secret, None)
        if user is not None:
            st.session_state.viewer = viewer_for(user)
            st.session_state.session_secret = secret
            return st.session_state.viewer
    if oidc_configured() and st.user.get("is_logged_in", False):
        user = _oidc_user()
        if user is not None and not identity_still_valid(user, st.user.get("iat")):
            # Issued before the account signed out everywhere (or changed its password):
            # forget the provider's identity in this browser too, so it stays out.
            st.session_state.sign_in_notice = IDENTITY_ENDED_NOTICE
            st.logout()
            return None
        if user is not None:
            _sign_in(user)
            return st.session_state.viewer
    return None


def refresh_viewer() -> None:
    """Re-read the signed-in user after their settings changed."""
    viewer = st.session_state.get("viewer")
    if viewer is not None:
        with data.sessions()() as s:
            st.session_state.viewer = viewer_for(user_by_id(s, viewer.id))


def sign_out(everywhere: bool = False) -> None:
    """End this tab's sign-in (or, with ``everywhere``, every sign-in of the account) and forget it."""
    viewer = st.session_state.get("viewer")
    with data.sessions()() as s, s.begin():
        user = user_by_id(s, viewer.id) if everywhere and viewer is not None else None
        if user is not None:
            end_all_web_sessions(s, user)
        end_web_session(s, st.session_state.get("session_secret"))
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state.signed_out = True
    st.session_state.cookie_op = None
    if oidc_configured() and st.user.get("is_logged_in", False):
        st.logout()


def sign_in_page() -> None:
    """The page shown to visitors who are not signed in."""
    flush_cookie()
    st.title(":material/directions_run: Tracker")
    st.caption("Record runs and rides, follow friends, climb the leaderboards.")
    if oidc_configured():
        if st.button("Sign in with your organisation's account", type="primary"):
            st.login()
        st.divider()
    if notice := st.session_state.pop("sign_in_notice", None):
        st.info(notice)
    sign_in_tab, sign_up = st.tabs(["Sign in", "Create an account"])
    with sign_in_tab:
        with st.form("sign_in"):
            username = st.text_input("Username", key="signin_username", max_chars=64)
            password = st.text_input("Password", type="password", key="signin_password")
            submitted = st.form_submit_button("Sign in", type="primary")
        if submitted:
            try:
                # sign_in commits the attempt itself, before checking the password.
                user = sign_in(data.sessions(), username, password, client_address())
            except AccountError as exc:
                st.error(str(exc))
            else:
                if user is None:
                    st.error("Wrong username or password.")
                else:
                    _sign_in(user)
                    st.rerun()
    with sign_up:
        with st.form("sign_up"):
            new_username = st.text_input("Username", help="3 to 32 characters: a-z, 0-9, _ . -",
                                         key="signup_username")
            new_name = st.text_input("Display name", key="signup_name", max_chars=128)
            new_password = st.text_input("Password", type="password", help="at least 8 characters",
                                         key="signup_password")
            again = st.text_input("Password again", type="password", key="signup_again")
            created = st.form_submit_button("Create account")
        if created:
            if new_password != again:
                st.error("The two passwords differ.")
            else:
                try:
                    with data.sessions()() as s, s.begin():
                        user = create_user(s, new_username, name=new_name or None, password=new_password)
                except AccountError as exc:
                    st.error(str(exc))
                else:
                    _sign_in(user)
                    st.rerun()
