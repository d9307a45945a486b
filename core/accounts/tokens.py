"""Device tokens: how devices identify their athlete."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.tables import DEVICE_SPORTS, DeviceToken, User
from core.text import DEVICE_NAME_MAX_CHARS, fit

TOKEN_LOOKUP_CHUNK = 500  # token ids per query of ``revoked_among``


def token_digest(token: str) -> str:
    """The stored form of a device token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_device_token(s: Session, user: User, name: str = "device",
                        sport: str | None = None) -> tuple[DeviceToken, str]:
    """A new device token for ``user``: the row and the secret (shown once). ``sport`` (run or
    ride) is the sport of the activities made from the device's bare fixes (``core.devices``);
    None leaves it to be inferred from their speeds. ValueError for another sport."""
    if sport is not None and sport not in DEVICE_SPORTS:
        raise ValueError(f"sport must be one of {', '.join(DEVICE_SPORTS)}, not {sport!r}")
    secret = "trk_" + secrets.token_urlsafe(32)
    row = DeviceToken(user_id=user.id, token_hash=token_digest(secret), name=fit(name, DEVICE_NAME_MAX_CHARS) or "device",
                      sport=sport)
    s.add(row)
    s.flush()
    return row, secret


def device_tokens(s: Session, user_id: int) -> list[DeviceToken]:
    """Every device token of the user, revoked ones included, in the order they were made."""
    return list(s.scalars(select(DeviceToken).where(DeviceToken.user_id == user_id).order_by(DeviceToken.id)))


def user_for_token(s: Session, token: str) -> User | None:
    """The owner of a valid, unrevoked device token, else None."""
    found = device_identity(s, token)
    return found[0] if found is not None else None


def device_identity(s: Session, token: str) -> tuple[User, int] | None:
    """The owner of a valid, unrevoked device token and the token's id (what a device's
    connection acts for, and what tells later whether the token was revoked), else None.
    Marks the token used now."""
    if not token:
        return None
    row = s.scalars(select(DeviceToken).where(DeviceToken.token_hash == token_digest(token))).first()
    if row is None or row.revoked:
        return None
    row.last_used_at = datetime.now(UTC)
    user = s.get(User, row.user_id)
    return (user, row.id) if user is not None else None


def revoked_among(s: Session, token_ids: list[int]) -> set[int]:
    """Those of ``token_ids`` that no longer let a device in: revoked, or gone (deleted with
    their user). Looked up ``TOKEN_LOOKUP_CHUNK`` ids per query."""
    valid: set[int] = set()
    for k in range(0, len(token_ids), TOKEN_LOOKUP_CHUNK):
        part = token_ids[k:k + TOKEN_LOOKUP_CHUNK]
        valid.update(s.scalars(select(DeviceToken.id).where(DeviceToken.id.in_(part),
                                                            DeviceToken.revoked.is_(False))))
    return set(token_ids) - valid


def revoke_device_token(s: Session, user: User, token_id: int) -> bool:
    """Revoke one of ``user``'s tokens; False if it is not theirs."""
    row = s.get(DeviceToken, token_id)
    if row is None or row.user_id != user.id:
        return False
    row.revoked = True
    return True
