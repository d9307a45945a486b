"""Accounts: passwords (salted scrypt hashes, slow by design), creating an account, display
names and e-mail addresses as stored, finding an athlete by username, id or address (and the
account a single sign-on identity signs in), and profile changes. Signing in is in
``core.accounts.signin``, device tokens in ``core.accounts.tokens``, web sessions in
``core.accounts.sessions``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.tables import ROLES, User
from core.text import clean, fit

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
USERNAME_RE = re.compile(r"^[a-z0-9_.-]{3,32}$")
MIN_PASSWORD_LENGTH = 8
MAX_NAME_CHARS: int = User.__table__.c.name.type.length
MAX_EMAIL_CHARS = 254  # the longest address SMTP can carry (RFC 5321); users.email holds 256
PURGE_BATCH_ROWS = 500
# A username made from an e-mail address (single sign-on): its local part, at most this long.
IDENTITY_USERNAME_CHARS = 24
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


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


def normal_username(username: str) -> str:
    """The username as stored and as the throttle keys it: PostgreSQL refuses NUL in text,
    so what was typed is cleaned of control characters before it reaches a query."""
    return clean(username).strip().lower()


def password_matches(user: User | None, password: str) -> bool:
    if user is None:
        # Hash anyway, so that the answer takes as long for a name that does not exist.
        verify_password(password, _unknown_user_hash())
        return False
    return verify_password(password, user.password_hash)


def authenticate(s: Session, username: str, password: str) -> User | None:
    """The user if the username and password match, else None."""
    user = user_by_name(s, username)
    return user if password_matches(user, password) else None


def user_by_name(s: Session, username: str) -> User | None:
    """The user with this username, if any."""
    return s.scalars(select(User).where(User.username == normal_username(username))).first()


def user_by_id(s: Session, user_id: int) -> User | None:
    """The user with this id as stored now, if any."""
    return s.get(User, user_id)


def users_with_role(s: Session, role: str, limit: int | None = None) -> list[User]:
    """The accounts with ``role`` (an entry of ``ROLES``), oldest first, at most ``limit``."""
    q = select(User).where(User.role == role).order_by(User.id)
    if limit is not None:
        q = q.limit(limit)
    return list(s.scalars(q))


def user_by_email(s: Session, email: str) -> User | None:
    """The user whose address this is (compared as stored: trimmed, lower case), if any."""
    return s.scalars(select(User).where(User.email == email.strip().lower())).first()


def username_for_email(s: Session, email: str) -> str:
    """A free username made from the address's local part: only the characters a username may
    hold, at most ``IDENTITY_USERNAME_CHARS`` of them ("athlete" if none is left), padded
    with "_" to the shortest length, numbered from 2 when taken."""
    local = re.sub(r"[^a-z0-9_.-]", "", email.split("@")[0].lower())[:IDENTITY_USERNAME_CHARS]
    base = (local or "athlete").ljust(3, "_")
    name, k = base, 1
    while s.scalars(select(User).where(User.username == name)).first() is not None:
        k += 1
        name = f"{base}{k}"
    return name


def user_for_identity(s: Session, email: str, name: str | None = None) -> User:
    """The account a sign-on provider's verified address signs in: the one with that address,
    else a new athlete named from it (``username_for_email``; ``name`` is the display name,
    the username when none). AccountError if the address cannot be stored."""
    user = user_by_email(s, email)
    if user is None:
        username = username_for_email(s, email)
        user = create_user(s, username, name=name or username, email=email)
    return user


def update_profile(s: Session, user: User, name: str | None = None, default_visibility: str | None = None,
                   **settings) -> User:
    """Change the user's display name or default visibility, and set the given keys of their
    settings (``units``, ``cues``, ...); the others are kept. ``name`` is stored as given
    (``display_name`` fits one to the column)."""
    if settings:
        # The settings as stored now, the row locked (PostgreSQL) until the transaction
        # ends: two saves of different keys at once (a device's cue preferences, the
        # profile form, follower approval) each keep the other's.
        s.flush()
        # FOR NO KEY UPDATE: rows that refer to the user (activities, route matches) can
        # still be written meanwhile, which a change of what they hide waits for.
        s.refresh(user, attribute_names=["settings"],
                  with_for_update={"key_share": True} if s.get_bind().dialect.name == "postgresql" else None)
    if name is not None:
        user.name = name
    if default_visibility is not None:
        user.default_visibility = default_visibility
    # A new dict: the JSON column does not notice a change made in place.
    user.settings = {**(user.settings or {}), **settings}
    s.flush()
    return user
