"""Web sessions of the dashboard, and single sign-on identities that follow the account."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.accounts.tables import User, WebSession, utc_now
from core.accounts.tokens import token_digest
from core.accounts.users import (
    MIN_PASSWORD_LENGTH,
    PURGE_BATCH_ROWS,
    AccountError,
    hash_password,
    update_profile,
    verify_password,
)

WEB_SESSION_DAYS = 30
# In User.settings, Unix seconds: an identity the sign-on provider issued before then no
# longer signs the account in (set by a password change and by ending other sign-ins).
SESSIONS_VALID_AFTER = "sessions_valid_after"


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
                            WebSession.expires_at > utc_now(now))).first()


def end_web_session(s: Session, secret: str | None) -> None:
    """Sign a browser out (idempotent)."""
    if secret:
        row = s.get(WebSession, token_digest(secret))
        if row is not None:
            s.delete(row)
            s.flush()


def end_other_web_sessions(s: Session, user: User, keep: str | None = None, now: datetime | None = None) -> int:
    """Sign the user out of every browser but the one holding ``keep``; returns how many ended.

    A browser signed in through OpenID Connect keeps the provider's identity in a cookie of
    its own and would be given a new session on its next visit; ``sessions_valid_after``
    turns that identity away (see ``identity_still_valid``). The browser holding ``keep``
    goes on with its own session."""
    invalidate_identities(s, user, now)
    q = delete(WebSession).where(WebSession.user_id == user.id)
    if keep:
        q = q.where(WebSession.token_hash != token_digest(keep))
    return s.execute(q).rowcount or 0


def end_all_web_sessions(s: Session, user: User, now: datetime | None = None) -> int:
    """Sign the user out of every browser, this one included; returns how many ended."""
    return end_other_web_sessions(s, user, keep=None, now=now)


def invalidate_identities(s: Session, user: User, now: datetime | None = None) -> None:
    """Refuse from now on every identity the user's sign-on provider issued before ``now``.
    Through ``update_profile``, which keeps the other settings as stored now (what the
    athlete hides among them)."""
    update_profile(s, user, **{SESSIONS_VALID_AFTER: utc_now(now).timestamp()})


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
    batch = select(WebSession.token_hash).where(WebSession.expires_at <= utc_now(now)).limit(limit)
    return s.execute(delete(WebSession).where(WebSession.token_hash.in_(batch))).rowcount or 0


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
