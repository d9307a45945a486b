"""Distance leaderboards: weekly, monthly and all-time, per sport, global or among friends.

Two sources with the same answers: a database query (the embedded default), and Redis
sorted sets (``TRACKER_REDIS_URL``) that the worker rebuilds from that same query every
three minutes, so a page reads a board in a few Redis calls whatever the table's size.
Redis holds nothing that cannot be rebuilt: a board whose keys are missing (a wiped or
restarted Redis) is rebuilt from the database on first read.

Counted: completed activities that are not private and not held for review (flagged as
anomalous and not cleared by a moderator), by their start time (UTC weeks start
on Monday), each for the distance others are shown of it (``Activity.shown_distance_m``):
less than its own when its athlete hides part of it (``core.social.privacy``), since a
board's total less the distances the feed shows would otherwise tell how much is hidden.
An activity counts once that is worked out: at once for athletes who hide nothing, within
a worker round for the others (``core.jobs.shown``). Ties are ordered by user id, newest account first, in both sources. An athlete
who blocked the viewer is left out of the lines the viewer sees; the ranks stay the board's.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.activities.tables import SPORTS, Activity
from core.social.tables import Block, Friend

PERIODS = ("week", "month", "all")
SCOPES = ("global", "friends")
REFRESH_EVERY_S = 180
KEY_PREFIX = "tracker:lb"
KEY_TTL_S = 3 * 24 * 3600  # old weeks and months fall away on their own

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    rank: int
    user_id: int
    name: str
    username: str  # for a name that shows nothing: pages show @username instead
    distance_m: float


@dataclass(frozen=True)
class Board:
    period: str
    sport: str
    scope: str
    entries: list[Entry]
    me: Entry | None  # the viewer's own line, also when outside the top
    athletes: int  # how many athletes the board ranks
    source: str  # "redis" or "database"


def period_start(period: str, now: datetime | None = None) -> datetime | None:
    """Start of the current week (Monday 00:00 UTC), month, or None for all time."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "all":
        return None
    raise ValueError(f"period must be one of {', '.join(PERIODS)}")


def _check(period: str, sport: str, scope: str) -> None:
    if period not in PERIODS or sport not in SPORTS or scope not in SCOPES:
        raise ValueError(f"unknown board {period}/{sport}/{scope}")


def totals(s: Session, period: str, sport: str, now: datetime | None = None) -> list[tuple[int, float]]:
    """(user_id, metres) of every athlete on the board, best first."""
    start = period_start(period, now)
    total = func.sum(Activity.shown_distance_m)
    q = (select(Activity.user_id, total)
         .where(Activity.status == "completed", Activity.sport == sport, Activity.visibility != "private",
                Activity.shown_distance_m > 0, Activity.held.is_(False))
         .group_by(Activity.user_id))
    if start is not None:
        q = q.where(Activity.start_time >= start)
    rows = [(int(u), float(d)) for u, d in s.execute(q).all()]
    rows.sort(key=lambda r: (-r[1], -r[0]))
    return rows


def _friends_of(s: Session, user_id: int) -> set[int]:
    return set(s.scalars(select(Friend.friend_id).where(Friend.user_id == user_id))) | {user_id}


def _names(s: Session, ids) -> dict[int, tuple[str, str]]:
    """(display name, username) by user id."""
    ids = list(ids)
    rows = s.execute(select(User.id, User.name, User.username).where(User.id.in_(ids))).all() if ids else []
    return {u: (name, username) for u, name, username in rows}


def _blockers(s: Session, viewer_id: int | None) -> set[int]:
    if viewer_id is None:
        return set()
    return set(s.scalars(select(Block.user_id).where(Block.blocked_id == viewer_id)))


def _lines(s: Session, top: list[tuple[int, int, float]], mine: tuple[int, float] | None,
           viewer_id: int | None) -> tuple[list[Entry], Entry | None]:
    """Entries for the top rows, each (0-based rank, user id, metres), and the viewer's own
    (``mine`` is their 0-based rank and metres)."""
    names = _names(s, {u for _, u, _ in top} | ({viewer_id} if mine else set()))
    entries = [Entry(k + 1, u, *names.get(u, ("?", "?")), d) for k, u, d in top]
    me = Entry(mine[0] + 1, viewer_id, *names.get(viewer_id, ("?", "?")), mine[1]) if mine else None
    return entries, me


def _shown(ranked: list[tuple[int, float]], hidden: set[int], limit: int) -> list[tuple[int, int, float]]:
    """The first ``limit`` rows not hidden, each with its rank on the whole board."""
    return [(k, u, d) for k, (u, d) in enumerate(ranked) if u not in hidden][:limit]


def _board(s: Session, period: str, sport: str, scope: str, ranked: list[tuple[int, float]],
           viewer_id: int | None, limit: int, source: str) -> Board:
    mine = next(((k, d) for k, (u, d) in enumerate(ranked) if u == viewer_id), None)
    entries, me = _lines(s, _shown(ranked, _blockers(s, viewer_id), limit), mine, viewer_id)
    return Board(period, sport, scope, entries, me, len(ranked), source)


def database_board(s: Session, period: str, sport: str, scope: str = "global", viewer_id: int | None = None,
                   limit: int = 10, now: datetime | None = None) -> Board:
    """A board straight from the database."""
    _check(period, sport, scope)
    ranked = totals(s, period, sport, now)
    if scope == "friends":
        circle = _friends_of(s, viewer_id) if viewer_id is not None else set()
        ranked = [r for r in ranked if r[0] in circle]
    return _board(s, period, sport, scope, ranked, viewer_id, limit, "database")


def _period_tag(period: str, now: datetime | None) -> str:
    start = period_start(period, now)
    return "all" if start is None else f"{period}-{start.date().isoformat()}"


def board_key(period: str, sport: str, now: datetime | None = None) -> str:
    return f"{KEY_PREFIX}:{_period_tag(period, now)}:{sport}"


def member(user_id: int) -> str:
    # Zero-padded so that Redis's order among equal scores (members, descending) is the
    # database's tie order (user id, descending).
    return f"{user_id:012d}"


def refresh_redis(s: Session, redis, now: datetime | None = None) -> dict[str, int]:
    """Rebuild every board's sorted set from the database, swapping each in atomically."""
    sizes = {}
    for period in PERIODS:
        for sport in SPORTS:
            key = board_key(period, sport, now)
            ranked = totals(s, period, sport, now)
            staging = f"{key}:building"
            pipe = redis.pipeline(transaction=True)
            pipe.delete(staging)
            for start in range(0, len(ranked), 10_000):
                pipe.zadd(staging, {member(u): d for u, d in ranked[start:start + 10_000]})
            if ranked:
                pipe.rename(staging, key)
                pipe.expire(key, KEY_TTL_S if period != "all" else REFRESH_EVERY_S * 20)
            else:
                pipe.delete(key)
            pipe.set(f"{key}:built", int(time.time()), ex=KEY_TTL_S if period != "all" else REFRESH_EVERY_S * 20)
            pipe.execute()
            sizes[key] = len(ranked)
    return sizes


def redis_board(s: Session, redis, period: str, sport: str, scope: str = "global", viewer_id: int | None = None,
                limit: int = 10, now: datetime | None = None) -> Board:
    """A board read from Redis, rebuilt from the database first if its keys are gone."""
    _check(period, sport, scope)
    key = board_key(period, sport, now)
    if not redis.exists(f"{key}:built"):
        refresh_redis(s, redis, now)
    if scope == "global":
        hidden = _blockers(s, viewer_id)
        top = redis.zrevrange(key, 0, limit - 1 + len(hidden), withscores=True)
        ranked_top = _shown([(int(m), float(d)) for m, d in top], hidden, limit)
        athletes = int(redis.zcard(key))
        me = None
        if viewer_id is not None:
            pipe = redis.pipeline(transaction=False)
            pipe.zrevrank(key, member(viewer_id))
            pipe.zscore(key, member(viewer_id))
            rank, score = pipe.execute()
            if rank is not None:
                me = (int(rank), float(score))
        entries, mine = _lines(s, ranked_top, me, viewer_id)
        return Board(period, sport, scope, entries, mine, athletes, "redis")
    circle = sorted(_friends_of(s, viewer_id)) if viewer_id is not None else []
    scores = redis.zmscore(key, [member(u) for u in circle]) if circle else []
    ranked = sorted(((u, float(d)) for u, d in zip(circle, scores) if d is not None),
                    key=lambda r: (-r[1], -r[0]))
    return _board(s, period, sport, scope, ranked, viewer_id, limit, "redis")


def drop_lines(redis, user_id: int) -> int:
    """Remove the athlete's lines from every Redis board; how many went. After a change of
    what they hide, the database counts none of their activities until the worker has worked
    out what others are shown of them (``core.jobs.shown``), and nor do the boards: a line
    built before would add up what is now hidden. The next rebuild puts back what the
    database counts. Without Redis, or with Redis failing, nothing (the failure is logged:
    the line goes at the next rebuild, within three minutes)."""
    if redis is None:
        return 0
    from redis.exceptions import RedisError

    try:
        return remove_lines(redis, user_id)
    except RedisError:
        log.warning("removing athlete %s's leaderboard lines failed", user_id, exc_info=True)
        return 0


def remove_lines(redis, user_id: int) -> int:
    """Remove the athlete's lines from every Redis board; how many went (Redis errors raise)."""
    removed = 0
    for key in redis.scan_iter(match=f"{KEY_PREFIX}:*", count=1000):
        if redis.type(key) in ("zset", b"zset"):
            removed += int(redis.zrem(key, member(user_id)) or 0)
    return removed


def connect_redis(url: str | None):
    """A Redis client for ``url`` (None when no URL is configured)."""
    if not url:
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5, decode_responses=True)


def leaderboard(s: Session, redis, period: str, sport: str, scope: str = "global", viewer_id: int | None = None,
                limit: int = 10, now: datetime | None = None) -> Board:
    """The board from Redis when configured, else from the database."""
    if redis is not None:
        return redis_board(s, redis, period, sport, scope, viewer_id, limit, now)
    return database_board(s, period, sport, scope, viewer_id, limit, now)
