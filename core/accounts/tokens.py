"""Device tokens: how devices identify their athlete."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.tables import DeviceToken, User
from core.text import DEVICE_NAME_MAX_CHARS, fit


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


def device_tokens(s: Session, user_id: int) -> list[DeviceToken]:
    """Every device token of the user, revoked ones included, in the order they were made."""
    return list(s.scalars(select(DeviceToken).where(DeviceToken.user_id == user_id).order_by(DeviceToken.id)))


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
