"""Accounts and device tokens, on SQLite and PostgreSQL."""

import pytest

from core.accounts import (
    AccountError,
    authenticate,
    create_device_token,
    create_user,
    revoke_device_token,
    user_for_token,
    verify_password,
)
from core.models import DeviceToken


def test_passwords_are_stored_as_salted_hashes_and_verified(session):
    """The stored hash is not the password, differs per user, and verifies."""
    a = create_user(session, "pw_one", password="correct horse")
    b = create_user(session, "pw_two", password="correct horse")
    assert "correct horse" not in a.password_hash
    assert a.password_hash != b.password_hash
    assert authenticate(session, "PW_One", "correct horse").id == a.id
    assert authenticate(session, "pw_one", "wrong horse!") is None
    assert not verify_password("x", "not-a-hash")


@pytest.mark.parametrize("username,password,reason", [
    ("ab", "long enough", "username"), ("bad name", "long enough", "username"), ("fine_name", "short", "password"),
])
def test_bad_sign_up_details_are_refused_with_a_reason(session, username, password, reason):
    """Usernames and passwords are checked."""
    with pytest.raises(AccountError, match=reason):
        create_user(session, username, password=password)


def test_a_taken_username_is_refused(session):
    """Usernames are unique, case-insensitively."""
    create_user(session, "taken_1")
    with pytest.raises(AccountError, match="taken"):
        create_user(session, "Taken_1")


def test_device_tokens_are_hashed_and_revocable_by_their_owner_only(session):
    """A token authenticates its owner until revoked; only its hash is stored."""
    owner = create_user(session, "token_owner")
    other = create_user(session, "token_other")
    row, secret = create_device_token(session, owner, name="watch")
    assert session.get(DeviceToken, row.id).token_hash != secret
    assert user_for_token(session, secret).id == owner.id
    assert not revoke_device_token(session, other, row.id)
    assert user_for_token(session, secret) is not None
    assert revoke_device_token(session, owner, row.id)
    assert user_for_token(session, secret) is None
    assert user_for_token(session, "") is None


def test_web_session_survives_until_signed_out_or_expired(session):
    from datetime import UTC, datetime, timedelta

    from core.accounts import end_web_session, start_web_session, user_for_web_session
    from core.models import WebSession

    user = create_user(session, "websess", password="correct horse")
    secret = start_web_session(session, user)
    assert user_for_web_session(session, secret).id == user.id
    assert user_for_web_session(session, secret + "x") is None
    assert user_for_web_session(session, None) is None
    assert session.get(WebSession, secret) is None  # only the hash is stored
    end_web_session(session, secret)
    assert user_for_web_session(session, secret) is None
    old = start_web_session(session, user)
    row = session.query(WebSession).filter(WebSession.user_id == user.id).one()
    row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    session.flush()
    assert user_for_web_session(session, old) is None


def test_change_password_and_sign_out_elsewhere(session):
    from core.accounts import (
        AccountError,
        authenticate,
        change_password,
        end_other_web_sessions,
        start_web_session,
        user_for_web_session,
    )

    user = create_user(session, "changer", password="old password")
    with pytest.raises(AccountError):
        change_password(session, user, "wrong", "new password")
    with pytest.raises(AccountError):
        change_password(session, user, "old password", "short")
    change_password(session, user, "old password", "new password")
    assert authenticate(session, "changer", "new password") is not None
    assert authenticate(session, "changer", "old password") is None
    here, there = start_web_session(session, user), start_web_session(session, user)
    assert end_other_web_sessions(session, user, keep=here) == 1
    assert user_for_web_session(session, here) is not None and user_for_web_session(session, there) is None
