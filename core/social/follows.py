"""Following other athletes, and finding them by name."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.social.tables import Friend

# The longest text a search for athletes looks for (more is cut off).
SEARCH_MAX_CHARS = 64


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


def following_among(s: Session, user_id: int, ids: list[int]) -> set[int]:
    """Which of ``ids`` the athlete ``user_id`` follows."""
    if not ids:
        return set()
    return set(s.scalars(select(Friend.friend_id).where(Friend.user_id == user_id, Friend.friend_id.in_(ids))))


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape character ``\\``) for names containing ``text`` literally: its
    ``%``, ``_`` and ``\\`` match themselves, not any text or any character."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_athletes(s: Session, viewer_id: int, text: str, limit: int = 20) -> list[tuple[User, bool]]:
    """Athletes other than the viewer whose username or display name contains ``text`` (names
    are public; case is ignored, the text trimmed and cut to ``SEARCH_MAX_CHARS``), by
    username, each with whether the viewer follows them. Blank text finds nobody."""
    text = (text or "").strip()[:SEARCH_MAX_CHARS]
    if not text:
        return []
    pattern = like_pattern(text.lower())
    found = s.scalars(select(User).where(User.id != viewer_id,
                                         or_(User.username.ilike(pattern, escape="\\"),
                                             User.name.ilike(pattern, escape="\\")))
                      .order_by(User.username).limit(limit)).all()
    following = following_among(s, viewer_id, [u.id for u in found])
    return [(u, u.id in following) for u in found]


def followed_athletes(s: Session, user_id: int) -> list[User]:
    """The athletes ``user_id`` follows, by display name."""
    return list(s.scalars(select(User).join(Friend, Friend.friend_id == User.id)
                          .where(Friend.user_id == user_id).order_by(User.name)))


def follower_count(s: Session, user_id: int) -> int:
    """How many athletes follow ``user_id``."""
    return int(s.scalar(select(func.count()).select_from(Friend).where(Friend.friend_id == user_id)) or 0)
