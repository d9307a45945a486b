"""Local accounts and device tokens.

Passwords are stored as salted scrypt hashes (slow by design). Device tokens are random
secrets shown once; only their SHA-256 is stored, which is enough for a high-entropy token
and lets the ingest server check one with a single indexed lookup.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.models import ROLES, DeviceToken, User, WebSession

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
USERNAME_RE = re.compile(r"^[a-z0-9_.-]{3,32}$")
MIN_PASSWORD_LENGTH = 8
WEB_SESSION_DAYS = 30


class AccountError(ValueError):
    """A sign-up or sign-in problem the user can fix; the message says which."""


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
    if s.scalars(select(User).where(User.username == username)).first() is not None:
        raise AccountError("that username is taken")
    user = User(username=username, name=(name or username).strip()[:128], email=email, role=role,
                password_hash=hash_password(password) if password else None, settings={})
    s.add(user)
    s.flush()
    return user


def authenticate(s: Session, username: str, password: str) -> User | None:
    """The user if the username and password match, else None."""
    user = s.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None or not verify_password(password, user.password_hash):
        return None
    return user


def user_by_name(s: Session, username: str) -> User | None:
    """The user with this username, if any."""
    return s.scalars(select(User).where(User.username == username.strip().lower())).first()


def token_digest(token: str) -> str:
    """The stored form of a device token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_device_token(s: Session, user: User, name: str = "device") -> tuple[DeviceToken, str]:
    """A new device token for ``user``: the row and the secret (shown once)."""
    secret = "trk_" + secrets.token_urlsafe(32)
    row = DeviceToken(user_id=user.id, token_hash=token_digest(secret), name=name[:100])
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


def user_for_web_session(s: Session, secret: str | None) -> User | None:
    """The user signed in with this cookie secret, unless it is unknown or expired."""
    if not secret:
        return None
    row = s.get(WebSession, token_digest(secret))
    if row is None or row.expires_at <= datetime.now(UTC):
        return None
    return s.get(User, row.user_id)


def end_web_session(s: Session, secret: str | None) -> None:
    """Sign a browser out (idempotent)."""
    if secret:
        row = s.get(WebSession, token_digest(secret))
        if row is not None:
            s.delete(row)
            s.flush()


def change_password(s: Session, user: User, current: str, new: str) -> None:
    """Set a new password after checking the current one; AccountError says what is wrong."""
    if user.password_hash and not verify_password(current, user.password_hash):
        raise AccountError("the current password is wrong")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    user.password_hash = hash_password(new)
    s.flush()


def end_other_web_sessions(s: Session, user: User, keep: str | None = None) -> int:
    """Sign the user out of every browser but the one holding ``keep``; returns how many ended."""
    q = delete(WebSession).where(WebSession.user_id == user.id)
    if keep:
        q = q.where(WebSession.token_hash != token_digest(keep))
    return s.execute(q).rowcount or 0
