"""Deleting an athlete's account and everything held about them.

In this order, each write a short transaction of its own:

1. Their device tokens are revoked, so every ingest server closes their connections within
   its token watch (about two seconds) and takes nothing more from them; their lines on
   the leaderboards, their live state and their activities' relay marks in Redis go. Their
   activities' entries in the scorers' streams (an activity id each, nothing else) are left
   for the scorers, which find the activity gone and acknowledge them: deleting stream
   entries would leave Redis's count of the group's lag off for good.
2. Their activities' points and phone apps' fix hints go, ``CHUNK_POINTS`` per transaction,
   newest first; then the activities, and the comments and kudos they gave, ``CHUNK_ROWS``
   at a time; the routes their activities shaped are marked for drawing again.
3. The user row goes, and with it, through the foreign keys' ON DELETE CASCADE, every row
   about them: activities and their events, flags and moderators' decisions about them,
   comments and kudos they gave (on other athletes' activities too) and received, follows,
   requests and blocks both ways, privacy zones, tokens, sign-in sessions, engagement
   records and risks, badges, challenges and group memberships, route signals and
   suggestions, settings. Their failed sign-ins (kept by username) go too. A moderator's
   decisions about other athletes stay, without the moderator.
4. Those routes are drawn, named and measured again from the activities left (or deleted
   when none is left); a crash before that leaves them marked, for the worker's next round.
5. Redis is cleaned again after ``SETTLE_S``: a device still sending until its connection
   closed, or a leaderboard rebuild under way, may have written them back meanwhile.

Their archived points and the files they uploaded (``core.storage.cold``,
``core.activities.originals``: their folder of the archive) and their data exports
(``core.jobs.export``) go with step 3: files first (a build under way
finds its row gone and deletes what it wrote), then the rows. Nothing else holds them: no
model file keeps its training rows (the anomaly forest, the drop-off model and the
suggestions are fitted on figures and trained again on what is left).
"""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import DeviceToken, LoginAttempt, User
from core.activities.references import forget_activities
from core.activities.tables import Activity
from core.config import load_settings
from core.devices.tables import FixHint
from core.jobs.export import expire_exports
from core.social.tables import Comment, Kudos
from core.storage import cold
from core.storage.engine import write_transaction
from core.storage.points import RoutePoint

log = logging.getLogger(__name__)

JOB = "delete_account"
CHUNK_POINTS = 5_000  # points (and phone apps' fix hints) per transaction
CHUNK_ROWS = 500  # activities, comments and kudos per transaction
REST_S = 0.005  # after each chunk on SQLite: the ingest server's retries get the lock in between
SETTLE_S = 5.0  # then Redis is cleaned again: every ingest server has dropped the revoked tokens


def delete_account(Session: sessionmaker[Session], user_id: int, redis=None,
                   settle_s: float = SETTLE_S) -> dict:
    """Delete the account ``user_id`` and everything about them (see the module's text);
    counts of what went. Safe to run again after a failure at any step: it goes on from what
    is left, and cleans Redis even when the account row is already gone."""
    from core.routes.matching import refresh
    from core.routes.tables import Route, RouteActivity

    with write_transaction(Session, JOB) as s:
        user = s.get(User, user_id)
        username = user.username if user is not None else None
        s.execute(update(DeviceToken).where(DeviceToken.user_id == user_id).values(revoked=True))
    with Session() as s:
        activity_ids = list(s.scalars(select(Activity.id).where(Activity.user_id == user_id)))
        routes = set(s.scalars(select(RouteActivity.route_id).where(RouteActivity.user_id == user_id,
                                                                    RouteActivity.route_id.is_not(None))))
    if user is None and not activity_ids:
        removed = forget_in_redis(redis, user_id) if redis is not None else 0
        return {"deleted": False, "redis_entries": removed}
    removed = forget_in_redis(redis, user_id, activity_ids) if redis is not None else 0
    points = 0
    for activity_id in activity_ids:
        for table in (RoutePoint, FixHint):
            while True:
                gone = _chunk(Session, lambda s, t=table, a=activity_id: _delete_newest(s, t, a))
                points += gone if table is RoutePoint else 0
                if not gone:
                    break
    for start in range(0, len(activity_ids), CHUNK_ROWS):
        part = activity_ids[start:start + CHUNK_ROWS]
        _chunk(Session, lambda s, p=part: _delete_activities(s, user_id, p))
    for table, column in ((Comment, Comment.user_id), (Kudos, Kudos.user_id)):
        while _chunk(Session, lambda s, t=table, c=column: _delete_some(s, t, c, user_id)):
            pass
    settings = load_settings()
    expire_exports(Session, settings, user_id)  # their archives' files, and any half-built one
    cold.remove_athlete(cold.open_archive(settings), user_id)  # their archived points (storage tiers)
    with write_transaction(Session, JOB) as s:
        # Activities a device uploaded since they were listed go with the account's row: what
        # names them forgets them first, and the routes they joined are redrawn too.
        late = list(s.scalars(select(Activity.id).where(Activity.user_id == user_id)))
        if late:
            routes |= set(s.scalars(select(RouteActivity.route_id).where(RouteActivity.activity_id.in_(late),
                                                                         RouteActivity.route_id.is_not(None))))
            forget_activities(s, user_id, late)
        if routes:
            s.execute(update(Route).where(Route.id.in_(sorted(routes))).values(dirty=True))
        if username is not None:
            s.execute(delete(LoginAttempt).where(LoginAttempt.key == f"user:{username}"))
        s.execute(delete(User).where(User.id == user_id))
    # Again now the account is gone: an upload under way may have written its file since.
    cold.remove_athlete(cold.open_archive(settings), user_id)
    for route_id in sorted(routes):  # drawn, named and measured again from what is left, or gone
        refresh(Session, route_id)
    if redis is not None:
        # Again once every ingest server has dropped the revoked tokens' connections (a device
        # still sending may have published its live state meanwhile) and a leaderboard
        # rebuild under way has swapped its boards in.
        time.sleep(settle_s)
        removed += forget_in_redis(redis, user_id, activity_ids)
    log.info("account %s deleted: %d activities, %d points, %d Redis entries", user_id, len(activity_ids), points,
             removed)
    return {"deleted": True, "activities": len(activity_ids), "points": points, "routes_redrawn": len(routes),
            "redis_entries": removed}


def _chunk(Session: sessionmaker[Session], work) -> int:
    """Run ``work(session)`` in a short write transaction of its own; on SQLite, rest after it
    as long as the lock was held, so the ingest server's retries get the lock in between."""
    with write_transaction(Session, JOB) as s:
        held = time.perf_counter()
        done = int(work(s) or 0)
        sqlite = s.get_bind().dialect.name == "sqlite"
    if sqlite:
        time.sleep(time.perf_counter() - held + REST_S)
    return done


def _delete_newest(s: Session, table, activity_id: int) -> int:
    """Delete up to ``CHUNK_POINTS`` of an activity's rows of ``table`` (keyed by activity and seq)."""
    top = s.scalar(select(table.seq).where(table.activity_id == activity_id).order_by(table.seq.desc()).limit(1))
    if top is None:
        return 0
    floor = s.scalar(select(table.seq).where(table.activity_id == activity_id).order_by(table.seq.desc())
                     .offset(CHUNK_POINTS - 1).limit(1))
    q = delete(table).where(table.activity_id == activity_id)
    return s.execute(q.where(table.seq >= floor) if floor is not None else q).rowcount


def _delete_activities(s: Session, user_id: int, activity_ids: list[int]) -> int:
    """Delete the activities and what refers to them (badges, challenges and routes that name
    one forget it)."""
    forget_activities(s, user_id, activity_ids)
    return s.execute(delete(Activity).where(Activity.id.in_(activity_ids))).rowcount


def _delete_some(s: Session, table, column, user_id: int) -> int:
    """Delete up to ``CHUNK_ROWS`` of the rows of ``table`` whose ``column`` is ``user_id``."""
    keys = list(table.__table__.primary_key.columns)
    some = select(*keys).where(column == user_id).limit(CHUNK_ROWS)
    rows = s.execute(some).all()
    if not rows:
        return 0
    if len(keys) == 1:
        return s.execute(delete(table).where(keys[0].in_([r[0] for r in rows]))).rowcount
    return sum(s.execute(delete(table).where(*(k == v for k, v in zip(keys, r)))).rowcount for r in rows)


def forget_in_redis(redis, user_id: int, activity_ids: list[int] | None = None) -> int:
    """Remove the athlete's leaderboard lines, the live state of their activities (those
    given, and any live record that names them), and the relay marks of those given; how
    many entries went."""
    from core.activities.live_board import INDEX
    from core.activities.live_board import KEY_PREFIX as LIVE_PREFIX
    from core.jobs.stream import RELAYED, RELAYED_LATE
    from core.social.leaderboards import remove_lines

    removed = remove_lines(redis, user_id)
    live = {str(a) for a in activity_ids or []}
    for key in redis.scan_iter(match=f"{LIVE_PREFIX}*", count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        if name == INDEX or redis.type(key) not in ("string", b"string"):
            continue
        try:
            if json.loads(redis.get(key) or "{}").get("user_id") == user_id:
                live.add(name[len(LIVE_PREFIX):])
        except (ValueError, AttributeError):
            continue
    ids = sorted(live)
    for start in range(0, len(ids), 1000):
        part = ids[start:start + 1000]
        removed += int(redis.delete(*[f"{LIVE_PREFIX}{a}" for a in part]) or 0)
        removed += int(redis.zrem(INDEX, *part) or 0)
    given = [str(a) for a in activity_ids or []]
    for start in range(0, len(given), 1000):
        part = given[start:start + 1000]
        removed += int(redis.delete(*[f"{mark}{a}" for mark in (RELAYED, RELAYED_LATE) for a in part]) or 0)
    return removed
