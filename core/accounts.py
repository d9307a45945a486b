"""Local accounts, browser sign-ins, sign-in throttling and device tokens.

Passwords are stored as salted scrypt hashes (slow by design). Device tokens and web
session secrets are random and shown once; only their SHA-256 is stored, which is enough
for a high-entropy secret and lets a check be a single indexed lookup, cheap enough for the
dashboard to repeat on every run (so a role change, a password change or "sign out
everywhere" takes effect at once). Those also set the account's ``sessions_valid_after``
(in ``User.settings``), so that a browser signed in through OpenID Connect, which may come
back with the provider's identity alone, is refused until it signs in again. Sign-in
attempts are counted in the database per account and per client, so the limit holds across
every dashboard process and every thread of one; the worker purges expired sessions and
attempts that no longer count.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from functools import cache

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from core.db import write_transaction
from core.models import ROLES, DeviceToken, LoginAttempt, User, WebSession
from core.text import DEVICE_NAME_MAX_CHARS, clean, fit

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
USERNAME_RE = re.compile(r"^[a-z0-9_.-]{3,32}$")
MIN_PASSWORD_LENGTH = 8
MAX_NAME_CHARS: int = User.__table__.c.name.type.length
MAX_EMAIL_CHARS = 254  # the longest address SMTP can carry (RFC 5321); users.email holds 256
WEB_SESSION_DAYS = 30
SIGN_IN_FAILURE_LIMIT = 5
SIGN_IN_WINDOW = timedelta(minutes=15)
MAX_ATTEMPT_KEY_CHARS = 200  # login_attempts.key
PURGE_BATCH_ROWS = 500
# In User.settings, Unix seconds: an identity the sign-on provider issued before then no
# longer signs the account in (set by a password change and by ending other sign-ins).
SESSIONS_VALID_AFTER = "sessions_valid_after"
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class AccountError(ValueError):
    """A sign-up or sign-in problem the user can fix; the message says which."""


class SignInThrottled(AccountError):
    """Too many recent failed sign-ins for this account or client; the message says how long to wait."""

    def __init__(self, wait: timedelta) -> None:
        minutes = max(1, math.ceil(wait.total_seconds() / 60))
        super().__init__(f"Too many failed sign-ins: try again in {minutes} minute{'' if minutes == 1 else 's'}.")
        self.wait = wait


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` with its parameters."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str | None) -> bool:
    """Whether ``password`` matches the stored hash (constant-time comparison)."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


@cache
def _unknown_user_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def display_name(name: str | None, fallback: str) -> str:
    """A display name that fits the column: blank gives ``fallback``, a long one is cut with
    an ellipsis between characters as a reader sees them (``core.text.fit``)."""
    return fit(name, MAX_NAME_CHARS) or fallback


def clean_email(email: str | None) -> str | None:
    """The address as stored (trimmed, lower case); AccountError if it cannot be one."""
    if email is None or not email.strip():
        return None
    email = email.strip().lower()
    if len(email) > MAX_EMAIL_CHARS:
        raise AccountError(f"e-mail address: at most {MAX_EMAIL_CHARS} characters")
    if "@" not in email.strip("@") or any(c.isspace() for c in email) or _UNSTORABLE.search(email):
        raise AccountError("e-mail address: it needs the form name@example.org")
    return email


def create_user(s: Session, username: str, name: str | None = None, password: str | None = None,
                email: str | None = None, role: str = "athlete") -> User:
    """Create an account; AccountError says what is wrong with the details."""
    username = username.strip().lower()
    if not USERNAME_RE.match(username):
        raise AccountError("username: 3 to 32 characters among a-z, 0-9, '_', '.', '-'")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    email = clean_email(email)
    if s.scalars(select(User).where(User.username == username)).first() is not None:
        raise AccountError("that username is taken")
    if email is not None and s.scalars(select(User.id).where(User.email == email)).first() is not None:
        raise AccountError("that e-mail address belongs to another account")
    user = User(username=username, name=display_name(name, username), email=email, role=role,
                password_hash=hash_password(password) if password else None, settings={})
    s.add(user)
    s.flush()
    return user


def _username(username: str) -> str:
    """The username as stored and as the throttle keys it: PostgreSQL refuses NUL in text,
    so what was typed is cleaned of control characters before it reaches a query."""
    return clean(username).strip().lower()


def _password_matches(user: User | None, password: str) -> bool:
    if user is None:
        # Hash anyway, so that the answer takes as long for a name that does not exist.
        verify_password(password, _unknown_user_hash())
        return False
    return verify_password(password, user.password_hash)


def authenticate(s: Session, username: str, password: str) -> User | None:
    """The user if the username and password match, else None."""
    user = user_by_name(s, username)
    return user if _password_matches(user, password) else None


def _attempt_keys(username: str, client: str | None) -> list[str]:
    keys = [f"user:{_username(username)}"]
    if client:
        keys.append(f"client:{clean(client)}")
    return [k[:MAX_ATTEMPT_KEY_CHARS] for k in keys]


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def check_sign_in_allowed(s: Session, username: str, client: str | None, now: datetime | None = None,
                          exclude: Collection[int] = ()) -> None:
    """Raise SignInThrottled if the account or the client has failed too often lately.

    Attempts still being checked count as failures; ``exclude`` names the rows of the
    attempt asking, which is not counted against itself."""
    now = _now(now)
    waits = []
    for key in _attempt_keys(username, client):
        # The newest attempts through the (key, at) index: once there are enough of them,
        # sign-in opens again when the oldest of those leaves the window (a parallel
        # attempt may be stamped a moment after ``now``: the wait is never over the window).
        q = select(LoginAttempt.at).where(LoginAttempt.key == key, LoginAttempt.at > now - SIGN_IN_WINDOW)
        if exclude:
            q = q.where(LoginAttempt.id.not_in(exclude))
        recent = s.scalars(q.order_by(LoginAttempt.at.desc()).limit(SIGN_IN_FAILURE_LIMIT)).all()
        if len(recent) >= SIGN_IN_FAILURE_LIMIT:
            waits.append(min(recent[-1], now) + SIGN_IN_WINDOW - now)
    if waits:
        raise SignInThrottled(max(waits))


def record_failed_sign_in(s: Session, username: str, client: str | None, now: datetime | None = None) -> list[int]:
    """Count a sign-in attempt, a failure until it succeeds, against the account name and
    the client; returns the rows' ids."""
    now = _now(now)
    rows = [LoginAttempt(key=key, at=now) for key in _attempt_keys(username, client)]
    s.add_all(rows)
    s.flush()
    return [row.id for row in rows]


def clear_failed_sign_ins(s: Session, username: str) -> int:
    """Forget the account's failed sign-ins after a successful one; returns how many."""
    key = _attempt_keys(username, None)[0]
    return s.execute(delete(LoginAttempt).where(LoginAttempt.key == key)).rowcount or 0


def _forget_attempt(s: Session, ids: Collection[int]) -> None:
    s.execute(delete(LoginAttempt).where(LoginAttempt.id.in_(ids)))


def sign_in(Session: sessionmaker[Session], username: str, password: str, client: str | None,
            now: datetime | None = None) -> User | None:
    """The user (detached) if the password matches, None if not (counted); SignInThrottled
    after too many failures.

    The attempt is counted before the password is checked, in a transaction of its own that
    commits at once, and only then are the attempts in the window counted, this one and those
    still being checked included. Checking first and recording after would let parallel
    attempts (one browser tab each, or a script) all pass the check before any of them was
    recorded; in this order at most ``SIGN_IN_FAILURE_LIMIT`` attempts per account and per
    client reach the password in a window. A throttled attempt is refused before the
    password is checked, even a right one, and its row is removed, so waiting out the
    message is enough. A failure keeps its row. A success removes it and clears the
    account's failures but not the client's: otherwise one account the guesser owns would
    reset the count between guesses at others."""
    username, now = _username(username), _now(now)
    with write_transaction(Session, "sign_in") as s:
        attempt = record_failed_sign_in(s, username, client, now)
    try:
        with Session() as s:
            check_sign_in_allowed(s, username, client, now, exclude=attempt)
    except SignInThrottled:
        with write_transaction(Session, "sign_in") as s:
            _forget_attempt(s, attempt)
        raise
    with Session() as s:
        user = user_by_name(s, username)
    # scrypt is slow by design: no transaction stays open while it runs.
    if not _password_matches(user, password):
        return None
    with write_transaction(Session, "sign_in") as s:
        _forget_attempt(s, attempt)
        clear_failed_sign_ins(s, username)
    return user


def purge_old_login_attempts(s: Session, now: datetime | None = None, limit: int = PURGE_BATCH_ROWS) -> int:
    """Delete up to ``limit`` failed sign-ins older than the window; returns how many (repeat until fewer)."""
    cutoff = _now(now) - SIGN_IN_WINDOW
    batch = select(LoginAttempt.id).where(LoginAttempt.at <= cutoff).limit(limit)
    return s.execute(delete(LoginAttempt).where(LoginAttempt.id.in_(batch))).rowcount or 0


def user_by_name(s: Session, username: str) -> User | None:
    """The user with this username, if any."""
    return s.scalars(select(User).where(User.username == _username(username))).first()


def token_digest(token: str) -> str:
    """The stored form of a device token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_device_token(s: Session, user: User, name: str = "device") -> tuple[DeviceToken, str]:
    """A new device token for ``user``: the row and the secret (shown once)."""
    secret = "trk_" + secrets.token_urlsafe(32)
    row = DeviceToken(user_id=user.id, token_hash=token_digest(secret), name=fit(name, DEVICE_NAME_MAX_CHARS) or "device")
    s.add(row)
    s.flush()
    return row, secret


def user_for_token(s: Session, token: str) -> User | None:
    """The owner of a valid, unrevoked device token, else None."""
    if not token:
        return None
    row = s.scalars(select(DeviceToken).where(DeviceToken.token_hash == token_digest(token))).first()
    if row is None or row.revoked:
        return None
    row.last_used_at = datetime.now(UTC)
    return s.get(User, row.user_id)


def revoke_device_token(s: Session, user: User, token_id: int) -> bool:
    """Revoke one of ``user``'s tokens; False if it is not theirs."""
    row = s.get(DeviceToken, token_id)
    if row is None or row.user_id != user.id:
        return False
    row.revoked = True
    return True


def start_web_session(s: Session, user: User, days: int = WEB_SESSION_DAYS) -> str:
    """A new browser sign-in for ``user``; returns the secret for the cookie (stored hashed)."""
    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    s.add(WebSession(token_hash=token_digest(secret), user_id=user.id, created_at=now,
                     expires_at=now + timedelta(days=days)))
    s.flush()
    return secret


def user_for_web_session(s: Session, secret: str | None, now: datetime | None = None) -> User | None:
    """The user, as stored now, signed in with this cookie secret, unless it is unknown or expired.

    One query (the session by its primary key joined to its user), so the dashboard runs it
    on every rerun and sees a role change or an ended session at once."""
    if not secret:
        return None
    return s.scalars(select(User).join(WebSession, WebSession.user_id == User.id)
                     .where(WebSession.token_hash == token_digest(secret),
                            WebSession.expires_at > _now(now))).first()


def end_web_session(s: Session, secret: str | None) -> None:
    """Sign a browser out (idempotent)."""
    if secret:
        row = s.get(WebSession, token_digest(secret))
        if row is not None:
            s.delete(row)
            s.flush()


def change_password(s: Session, user: User, current: str, new: str, keep: str | None = None) -> int:
    """Set a new password after checking the current one, ending every sign-in but ``keep``'s.

    Whoever knew the old password may hold a session; it ends with it. Returns how many
    sessions ended; AccountError says what is wrong with the passwords."""
    if user.password_hash and not verify_password(current, user.password_hash):
        raise AccountError("the current password is wrong")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    user.password_hash = hash_password(new)
    s.flush()
    return end_other_web_sessions(s, user, keep=keep)


def end_other_web_sessions(s: Session, user: User, keep: str | None = None, now: datetime | None = None) -> int:
    """Sign the user out of every browser but the one holding ``keep``; returns how many ended.

    A browser signed in through OpenID Connect keeps the provider's identity in a cookie of
    its own and would be given a new session on its next visit; ``sessions_valid_after``
    turns that identity away (see ``identity_still_valid``). The browser holding ``keep``
    goes on with its own session."""
    invalidate_identities(user, now)
    q = delete(WebSession).where(WebSession.user_id == user.id)
    if keep:
        q = q.where(WebSession.token_hash != token_digest(keep))
    return s.execute(q).rowcount or 0


def end_all_web_sessions(s: Session, user: User, now: datetime | None = None) -> int:
    """Sign the user out of every browser, this one included; returns how many ended."""
    return end_other_web_sessions(s, user, keep=None, now=now)


def invalidate_identities(user: User, now: datetime | None = None) -> None:
    """Refuse from now on every identity the user's sign-on provider issued before ``now``."""
    # A new dict: the JSON column does not notice a change made in place.
    user.settings = {**(user.settings or {}), SESSIONS_VALID_AFTER: _now(now).timestamp()}


def identity_still_valid(user: User, issued_at: object) -> bool:
    """Whether a provider's identity issued at ``issued_at`` (the ID token's ``iat``, Unix
    seconds) may still sign ``user`` in: always, until they sign out everywhere or change
    their password; after that only if issued since. A missing or unreadable ``iat`` is
    then refused, since nothing shows it is newer."""
    valid_after = (user.settings or {}).get(SESSIONS_VALID_AFTER)
    if valid_after is None:
        return True
    if isinstance(issued_at, bool):
        return False
    try:
        issued = float(issued_at)
    except (TypeError, ValueError):
        return False
    return math.isfinite(issued) and issued >= float(valid_after)


def purge_expired_web_sessions(s: Session, now: datetime | None = None, limit: int = PURGE_BATCH_ROWS) -> int:
    """Delete up to ``limit`` expired web sessions; returns how many (repeat until fewer)."""
    batch = select(WebSession.token_hash).where(WebSession.expires_at <= _now(now)).limit(limit)
    return s.execute(delete(WebSession).where(WebSession.token_hash.in_(batch))).rowcount or 0
