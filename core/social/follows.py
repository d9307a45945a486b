"""Following other athletes, and finding them by name.

An athlete who approves their followers (the ``approve_followers`` setting) gets a request
instead of a follower; until they accept it the requester sees only what everyone sees.
Blocking someone ends following both ways and any request between the two; the blocked
athlete then sees nothing of the blocker's (``core.social.visibility``), cannot follow them,
and finds them in no search or suggestion."""

from __future__ import annotations

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.accounts.users import update_profile
from core.social.tables import Block, FollowRequest, Friend

# The longest text a search for athletes looks for (more is cut off).
SEARCH_MAX_CHARS = 64


def followed_ids(s: Session, user_id: int) -> list[int]:
    """Ids of the athletes ``user_id`` follows."""
    return list(s.scalars(select(Friend.friend_id).where(Friend.user_id == user_id)))


class FollowRefused(ValueError):
    """A follow, request or block that cannot be made; the message says why."""


def approves_followers(user: User) -> bool:
    """Whether ``user`` approves each new follower (off unless they turned it on)."""
    return bool((user.settings or {}).get("approve_followers", False))


def blocks_between(s: Session, a: int, b: int) -> bool:
    """Whether either athlete blocked the other."""
    return s.scalar(select(func.count()).select_from(Block).where(or_(
        and_(Block.user_id == a, Block.blocked_id == b), and_(Block.user_id == b, Block.blocked_id == a)))) > 0


def blocked_or_blocking(user_id: int):
    """A SQL select of the ids ``user_id`` blocked or was blocked by: people kept apart."""
    return select(Block.blocked_id).where(Block.user_id == user_id).union(
        select(Block.user_id).where(Block.blocked_id == user_id))


def lock_pair(s: Session, a: int, b: int) -> None:
    """Lock both athletes' rows, lower id first (PostgreSQL; SQLite's single writer already
    serialises), so that a follow, a request's answer and a block between the same two
    athletes happen one after the other: none misses a row the other is writing."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(User.id).where(User.id.in_(sorted({a, b}))).order_by(User.id).with_for_update())


def follow(s: Session, user: User, other: User) -> str:
    """Make ``user`` follow ``other``, or ask to when ``other`` approves their followers:
    "following" or "requested" (idempotent). Refused between athletes kept apart by a block."""
    if user.id == other.id:
        raise FollowRefused("an athlete cannot follow themselves")
    lock_pair(s, user.id, other.id)
    s.refresh(other, attribute_names=["settings"])  # approval as it is now, not as first read
    if s.get(Friend, (user.id, other.id)) is not None:
        return "following"
    if s.get(Block, (user.id, other.id)) is not None:
        raise FollowRefused("you blocked this athlete: unblock them first")
    if s.get(Block, (other.id, user.id)) is not None:
        raise FollowRefused("this athlete cannot be followed")
    if approves_followers(other):
        if s.get(FollowRequest, (user.id, other.id)) is None:
            s.add(FollowRequest(user_id=user.id, target_id=other.id))
            s.flush()
        return "requested"
    s.add(Friend(user_id=user.id, friend_id=other.id))
    s.flush()
    return "following"


def unfollow(s: Session, user: User, other: User) -> None:
    """Stop ``user`` following ``other``, or withdraw the request to (idempotent)."""
    s.execute(delete(Friend).where(Friend.user_id == user.id, Friend.friend_id == other.id))
    s.execute(delete(FollowRequest).where(FollowRequest.user_id == user.id, FollowRequest.target_id == other.id))
    s.flush()


def pending_requests(s: Session, user_id: int) -> list[User]:
    """The athletes waiting for ``user_id`` to approve them, oldest request first (none
    kept apart by a block)."""
    return list(s.scalars(select(User).join(FollowRequest, FollowRequest.user_id == User.id)
                          .where(FollowRequest.target_id == user_id,
                                 User.id.not_in(blocked_or_blocking(user_id)))
                          .order_by(FollowRequest.created_at, FollowRequest.user_id)))


def requested_among(s: Session, user_id: int, ids: list[int]) -> set[int]:
    """Which of ``ids`` the athlete ``user_id`` has asked to follow, still unanswered."""
    if not ids:
        return set()
    return set(s.scalars(select(FollowRequest.target_id).where(FollowRequest.user_id == user_id,
                                                               FollowRequest.target_id.in_(ids))))


def answer_request(s: Session, user: User, requester_id: int, accept: bool) -> bool:
    """Accept or decline ``requester_id``'s request to follow ``user``; False when there was
    no such request (answered already, withdrawn, or never made) or a block keeps the two
    apart (the request is dropped)."""
    lock_pair(s, user.id, requester_id)
    if blocks_between(s, user.id, requester_id):
        s.execute(delete(FollowRequest).where(FollowRequest.user_id == requester_id,
                                              FollowRequest.target_id == user.id))
        return False
    gone = s.execute(delete(FollowRequest).where(FollowRequest.user_id == requester_id,
                                                 FollowRequest.target_id == user.id)).rowcount
    if not gone:
        return False
    if accept and s.get(Friend, (requester_id, user.id)) is None:
        s.add(Friend(user_id=requester_id, friend_id=user.id))
    s.flush()
    return True


def set_approval(s: Session, user: User, on: bool) -> int:
    """Turn approval of new followers on or off. Turning it off accepts every pending
    request, as the athlete now lets anyone follow; returns how many were accepted."""
    update_profile(s, user, approve_followers=bool(on))
    if on:
        return 0
    waiting = [u.id for u in pending_requests(s, user.id)]
    for requester in waiting:
        answer_request(s, user, requester, True)
    return len(waiting)


def remove_follower(s: Session, user: User, follower_id: int) -> bool:
    """Stop ``follower_id`` following ``user`` (they may ask again); False if they did not."""
    gone = s.execute(delete(Friend).where(Friend.user_id == follower_id, Friend.friend_id == user.id)).rowcount
    s.flush()
    return bool(gone)


def block(s: Session, user: User, other: User) -> None:
    """``user`` blocks ``other`` (idempotent): following ends both ways, and so do requests."""
    if user.id == other.id:
        raise FollowRefused("an athlete cannot block themselves")
    lock_pair(s, user.id, other.id)
    pair = [(user.id, other.id), (other.id, user.id)]
    for a, b in pair:
        s.execute(delete(Friend).where(Friend.user_id == a, Friend.friend_id == b))
        s.execute(delete(FollowRequest).where(FollowRequest.user_id == a, FollowRequest.target_id == b))
    if s.get(Block, (user.id, other.id)) is None:
        s.add(Block(user_id=user.id, blocked_id=other.id))
    s.flush()


def unblock(s: Session, user: User, other: User) -> None:
    """Lift ``user``'s block on ``other`` (idempotent); following does not come back."""
    s.execute(delete(Block).where(Block.user_id == user.id, Block.blocked_id == other.id))
    s.flush()


def blocked_athletes(s: Session, user_id: int) -> list[User]:
    """The athletes ``user_id`` blocked, by display name."""
    return list(s.scalars(select(User).join(Block, Block.blocked_id == User.id)
                          .where(Block.user_id == user_id).order_by(User.name, User.id)))


def followers(s: Session, user_id: int) -> list[User]:
    """The athletes following ``user_id``, by display name."""
    return list(s.scalars(select(User).join(Friend, Friend.user_id == User.id)
                          .where(Friend.friend_id == user_id).order_by(User.name, User.id)))


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
    username, each with whether the viewer follows them. Blank text finds nobody, and nobody
    who blocked the viewer is found."""
    text = (text or "").replace("\x00", "").strip()[:SEARCH_MAX_CHARS]
    if not text:
        return []
    pattern = like_pattern(text.lower())
    found = s.scalars(select(User).where(User.id != viewer_id,
                                         or_(User.username.ilike(pattern, escape="\\"),
                                             User.name.ilike(pattern, escape="\\")),
                                         User.id.not_in(select(Block.user_id).where(Block.blocked_id == viewer_id)))
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
