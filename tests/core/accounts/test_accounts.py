"""Accounts, sign-in throttling, web sessions and device tokens, on SQLite and PostgreSQL."""

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete

from core.accounts.signin import SIGN_IN_FAILURE_LIMIT, SignInThrottled, check_sign_in_allowed, sign_in
from core.accounts.tables import DeviceToken, LoginAttempt, User
from core.accounts.tokens import create_device_token, revoke_device_token, user_for_token
from core.accounts.users import AccountError, authenticate, create_user, user_by_name, verify_password
from core.storage.engine import make_sessionmaker


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

    from core.accounts.sessions import end_web_session, start_web_session, user_for_web_session
    from core.accounts.tables import WebSession

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
    from core.accounts.sessions import (
        change_password,
        end_other_web_sessions,
        start_web_session,
        user_for_web_session,
    )
    from core.accounts.users import AccountError, authenticate

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


def _failures(session, key):
    from sqlalchemy import func, select

    from core.accounts.tables import LoginAttempt
    return session.scalar(select(func.count()).select_from(LoginAttempt).where(LoginAttempt.key == key))


@pytest.fixture
def committed(engine):
    """A session factory committing for real (``sign_in`` opens its own transactions) and a
    tag for the test's usernames. Its accounts are deleted afterwards, and the sign-in
    attempts are emptied before and after, so that no test counts another's failures."""
    Sessions = make_sessionmaker(engine)
    tag = f"t{uuid.uuid4().hex[:6]}"

    def empty_attempts():
        with Sessions() as s, s.begin():
            s.execute(delete(LoginAttempt))

    empty_attempts()
    yield Sessions, tag
    empty_attempts()
    with Sessions() as s, s.begin():
        s.execute(delete(User).where(User.username.like(f"{tag}%")))


def account(Sessions, username: str, password: str = "right password") -> User:
    with Sessions() as s, s.begin():
        return create_user(s, username, password=password)


def failures(Sessions, key: str) -> int:
    with Sessions() as s:
        return _failures(s, key)


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(committed):
    """After five failures in fifteen minutes the right password is refused too, with the wait."""
    Sessions, tag = committed
    user = account(Sessions, f"{tag}_locked")
    t0 = datetime.now(UTC) - timedelta(minutes=3)
    for i in range(5):
        assert sign_in(Sessions, f"{tag}_locked", "wrong password", f"10.0.0.{i}", now=t0 + timedelta(seconds=i)) is None
    with pytest.raises(SignInThrottled, match=r"^Too many failed sign-ins: try again in 12 minutes\.$"):
        sign_in(Sessions, f"{tag}_LOCKED", "right password", "10.0.0.99", now=t0 + timedelta(minutes=3))
    # A throttled attempt is not counted, so the wait does not grow while it is refused.
    assert failures(Sessions, f"user:{tag}_locked") == 5
    assert failures(Sessions, "client:10.0.0.99") == 0
    # Once the oldest failure leaves the window, the right password works and clears the count.
    later = t0 + timedelta(minutes=15, seconds=1)
    assert sign_in(Sessions, f"{tag}_locked", "right password", "10.0.0.99", now=later).id == user.id
    assert failures(Sessions, f"user:{tag}_locked") == 0


def test_one_client_guessing_at_many_accounts_is_throttled(committed):
    """Five failures from one address across accounts stop that address, not the others."""
    Sessions, tag = committed
    for i in range(5):
        account(Sessions, f"{tag}_sprayed_{i}")
    now = datetime.now(UTC)
    for i in range(5):
        assert sign_in(Sessions, f"{tag}_sprayed_{i}", "guess", "203.0.113.7", now=now) is None
    with pytest.raises(SignInThrottled, match="15 minutes"):
        sign_in(Sessions, f"{tag}_sprayed_0", "right password", "203.0.113.7", now=now)
    assert sign_in(Sessions, f"{tag}_sprayed_0", "right password", "198.51.100.1", now=now) is not None


def test_a_success_clears_the_accounts_failures_but_not_the_clients(committed):
    """The account starts afresh; the client's failures age out instead of resetting, and the
    success itself is not counted against the client."""
    Sessions, tag = committed
    account(Sessions, f"{tag}_clears")
    now = datetime.now(UTC)
    for _ in range(4):
        sign_in(Sessions, f"{tag}_clears", "wrong", "192.0.2.5", now=now)
    assert sign_in(Sessions, f"{tag}_clears", "right password", "192.0.2.5", now=now) is not None
    assert failures(Sessions, f"user:{tag}_clears") == 0
    assert failures(Sessions, "client:192.0.2.5") == 4
    with Sessions() as s:
        check_sign_in_allowed(s, f"{tag}_clears", "192.0.2.5", now=now)


def test_failures_for_names_that_do_not_exist_count_as_well(committed):
    """Guessing at an unknown name is throttled the same way, so it reveals nothing."""
    Sessions, tag = committed
    now = datetime.now(UTC)
    for _ in range(5):
        assert sign_in(Sessions, f"{tag}_nobody", "guess", None, now=now) is None
    with pytest.raises(SignInThrottled):
        sign_in(Sessions, f"{tag}_nobody", "guess", None, now=now)
    long_name = "x" * 5000
    assert sign_in(Sessions, long_name, "guess", "c" * 5000, now=now) is None
    assert failures(Sessions, ("user:" + long_name)[:200]) == 1


def test_twenty_parallel_wrong_passwords_reach_the_password_check_at_most_five_times(committed):
    """Attempts made at once (a browser tab each) are counted before any password is checked,
    so no more of them get a guess than one after another would."""
    Sessions, tag = committed
    account(Sessions, f"{tag}_parallel")
    start = threading.Barrier(20)
    checked, refused, crashed = [], [], []

    def attempt(i: int) -> None:
        start.wait()
        try:
            assert sign_in(Sessions, f"{tag}_parallel", "wrong password", f"198.51.100.{i}") is None
            checked.append(i)
        except SignInThrottled as exc:
            refused.append(str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported below, not lost in the thread
            crashed.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert crashed == []
    assert len(checked) + len(refused) == 20
    assert len(checked) <= SIGN_IN_FAILURE_LIMIT
    assert set(refused) <= {"Too many failed sign-ins: try again in 15 minutes."}
    # Failures stay counted; refused attempts leave nothing behind.
    assert failures(Sessions, f"user:{tag}_parallel") == len(checked)
    assert sum(failures(Sessions, f"client:198.51.100.{i}") for i in range(20)) == len(checked)


def test_a_nul_in_the_username_is_cleaned_before_it_is_counted_or_looked_up(committed):
    """PostgreSQL refuses NUL in text; a username typed with one is the name without it."""
    Sessions, tag = committed
    user = account(Sessions, f"{tag}_nul")
    now = datetime.now(UTC)
    assert sign_in(Sessions, f"{tag}_\x00nul", "wrong password", "192.0.2.\x0033", now=now) is None
    assert failures(Sessions, f"user:{tag}_nul") == 1
    assert failures(Sessions, "client:192.0.2.33") == 1
    assert sign_in(Sessions, f"{tag}_nul\x00", "right password", "192.0.2.33", now=now).id == user.id
    with Sessions() as s:
        assert user_by_name(s, f"\x00{tag}_nul").id == user.id
        assert authenticate(s, f"{tag}_nul\x00", "right password").id == user.id
        assert user_by_name(s, "\x00") is None


def test_old_failed_sign_ins_are_purged_in_batches(session):
    """Attempts older than the window go, newer ones stay; each call deletes at most one batch."""
    from datetime import UTC, datetime, timedelta

    from core.accounts.signin import purge_old_login_attempts, record_failed_sign_in

    now = datetime.now(UTC)
    for minutes in (16, 20, 60, 24 * 60):
        record_failed_sign_in(session, "purged", "198.51.100.9", now=now - timedelta(minutes=minutes))
    record_failed_sign_in(session, "purged", "198.51.100.9", now=now - timedelta(minutes=5))
    assert purge_old_login_attempts(session, now=now, limit=5) == 5
    assert purge_old_login_attempts(session, now=now, limit=5) == 3
    assert purge_old_login_attempts(session, now=now, limit=5) == 0
    assert _failures(session, "user:purged") == 1 and _failures(session, "client:198.51.100.9") == 1


def test_expired_web_sessions_are_purged_in_batches(session):
    """Expired sessions go, live ones stay; each call deletes at most one batch."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import select

    from core.accounts.sessions import purge_expired_web_sessions, start_web_session, user_for_web_session
    from core.accounts.tables import WebSession

    user = create_user(session, "stale_sessions")
    live = start_web_session(session, user)
    for days in (1, 2, 3):
        start_web_session(session, user, days=-days)
    now = datetime.now(UTC)
    assert purge_expired_web_sessions(session, now=now, limit=2) == 2
    assert purge_expired_web_sessions(session, now=now, limit=2) == 1
    assert purge_expired_web_sessions(session, now=now, limit=2) == 0
    assert len(session.scalars(select(WebSession).where(WebSession.user_id == user.id)).all()) == 1
    assert user_for_web_session(session, live).id == user.id
    assert purge_expired_web_sessions(session, now=now + timedelta(days=31)) >= 1
    assert user_for_web_session(session, live, now=now) is None


def test_a_password_change_ends_every_other_sign_in(session):
    """The browser that changed the password stays signed in; the others are out."""
    from core.accounts.sessions import change_password, start_web_session, user_for_web_session

    user = create_user(session, "changes_pw", password="old password")
    here, there, elsewhere = (start_web_session(session, user) for _ in range(3))
    assert change_password(session, user, "old password", "new password", keep=here) == 2
    assert user_for_web_session(session, here).id == user.id
    assert user_for_web_session(session, there) is None and user_for_web_session(session, elsewhere) is None
    assert change_password(session, user, "new password", "newer password") == 1
    assert user_for_web_session(session, here) is None


def test_sign_out_everywhere_ends_every_session_of_that_account_only(session):
    """Every browser of the account is signed out; other athletes stay signed in."""
    from core.accounts.sessions import end_all_web_sessions, start_web_session, user_for_web_session

    user, other = create_user(session, "leaves_all"), create_user(session, "stays_in")
    mine = [start_web_session(session, user) for _ in range(2)]
    theirs = start_web_session(session, other)
    assert end_all_web_sessions(session, user) == 2
    assert all(user_for_web_session(session, secret) is None for secret in mine)
    assert user_for_web_session(session, theirs).id == other.id


def test_the_session_check_sees_a_role_change_made_elsewhere(engine):
    """A moderator demoted by another connection is an athlete on the next check."""
    from sqlalchemy.orm import Session

    from core.accounts.sessions import end_web_session, start_web_session, user_for_web_session
    from core.accounts.tables import User

    with Session(engine) as s, s.begin():
        mod = create_user(s, "demoted_mod", role="moderator")
        secret, mod_id = start_web_session(s, mod), mod.id
    try:
        with Session(engine) as s:
            assert user_for_web_session(s, secret).role == "moderator"
        with Session(engine) as s, s.begin():
            s.get(User, mod_id).role = "athlete"
        with Session(engine) as s:
            assert user_for_web_session(s, secret).role == "athlete"
        with Session(engine) as s, s.begin():
            end_web_session(s, secret)
        with Session(engine) as s:
            assert user_for_web_session(s, secret) is None
    finally:
        with Session(engine) as s, s.begin():
            s.delete(s.get(User, mod_id))


def test_long_display_names_are_cut_with_an_ellipsis_and_long_emails_refused(session):
    """Names fit the column the same way on both databases; an e-mail too long is refused."""
    from core.accounts.users import MAX_NAME_CHARS, display_name

    user = create_user(session, "long_name", name="Ana " + "Maria " * 40, email=" Ana@Example.ORG ")
    session.expire(user)
    assert len(user.name) == MAX_NAME_CHARS and user.name.endswith("…")
    assert user.name.startswith("Ana Maria Maria")
    assert user.email == "ana@example.org"
    assert display_name("   ", "fallback_name") == "fallback_name"
    with pytest.raises(AccountError, match="at most 254 characters"):
        create_user(session, "long_mail", email="a" * 250 + "@example.org")
    with pytest.raises(AccountError, match="name@example.org"):
        create_user(session, "bad_mail", email="not an address")
    with pytest.raises(AccountError, match="another account"):
        create_user(session, "same_mail", email="ANA@example.org")


@pytest.mark.parametrize("tail", ["e\u0301", "\U0001f44b\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
                                  "\U0001f1f5\U0001f1f9"])
def test_a_long_name_is_never_cut_through_an_accent_an_emoji_or_a_flag(session, tail):
    """The cut falls between characters as they are read, and NUL never reaches the database."""
    name = "\x00Ana" + "a" * 122 + tail * 3
    user = create_user(session, f"cut_{len(tail)}_{ord(tail[-1])}"[:32], name=name)
    session.expire(user)
    stored = user.name
    assert len(stored) <= 128 and stored.endswith("…") and "\x00" not in stored
    kept = stored[:-1]
    assert name.replace("\x00", " ").strip().startswith(kept)
    rest = name.replace("\x00", " ").strip()[len(kept):]
    assert rest.startswith(tail) or rest.startswith("a")


def test_sign_out_everywhere_turns_away_provider_identities_issued_before_it(session):
    """An OpenID Connect identity issued before "sign out everywhere" no longer signs in;
    one issued since does, and other accounts and other settings are left alone."""
    from core.accounts.sessions import SESSIONS_VALID_AFTER, end_all_web_sessions, identity_still_valid

    user, other = create_user(session, "oidc_leaver"), create_user(session, "oidc_stayer")
    user.settings = {"units": "imperial"}
    session.flush()
    # An account that never signed out everywhere takes any identity, even one without "iat".
    assert identity_still_valid(user, 1) and identity_still_valid(user, None)
    at = datetime(2025, 5, 1, 12, 0, 30, 500_000, tzinfo=UTC)
    end_all_web_sessions(session, user, now=at)
    session.expire_all()
    assert session.get(User, user.id).settings == {"units": "imperial", SESSIONS_VALID_AFTER: at.timestamp()}
    user = session.get(User, user.id)
    issued_before, same_second, issued_after = at.timestamp() - 3600, int(at.timestamp()), at.timestamp() + 1
    assert not identity_still_valid(user, issued_before)
    assert not identity_still_valid(user, same_second)  # "iat" is whole seconds: 12:00:30 may be before
    assert identity_still_valid(user, issued_after)
    assert identity_still_valid(user, str(int(issued_after)))
    for missing in (None, "", "soon", True, float("nan")):
        assert not identity_still_valid(user, missing)
    assert SESSIONS_VALID_AFTER not in (session.get(User, other.id).settings or {})
    assert identity_still_valid(session.get(User, other.id), issued_before)


def test_a_password_change_and_signing_out_other_browsers_turn_away_older_identities(session):
    """Both end the other browsers' sign-ins, those held through the provider's identity too."""
    from core.accounts.sessions import change_password, end_other_web_sessions, identity_still_valid

    changer, leaver = create_user(session, "oidc_changer", password="old password"), create_user(session, "oidc_other")
    before = datetime.now(UTC).timestamp() - 60
    change_password(session, changer, "old password", "new password")
    end_other_web_sessions(session, leaver, keep=None)
    session.expire_all()
    for user_id in (changer.id, leaver.id):
        user = session.get(User, user_id)
        assert not identity_still_valid(user, before)
        assert identity_still_valid(user, datetime.now(UTC).timestamp() + 1)
