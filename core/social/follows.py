"""Following other athletes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.social.tables import Friend


def followed_ids(s: Session, user_id: int) -> list[int]:
    """Ids of the athletes ``user_id`` follows."""
    return list(s.scalars(select(Friend.friend_id).where(Friend.user_id == user_id)))


def follow(s: Session, user: User, other: User) -> None:
    """Make ``user`` follow ``other`` (idempotent)."""
    if user.id == other.id:
        raise ValueError("an athlete cannot follow themselves")
    if s.get(Friend, (user.id, other.id)) is None:
        s.add(Friend(user_id=user.id, friend_id=other.id))
        s.flush()


def unfollow(s: Session, user: User, other: User) -> None:
    """Stop ``user`` following ``other`` (idempotent)."""
    row = s.get(Friend, (user.id, other.id))
    if row is not None:
        s.delete(row)
        s.flush()
