"""Deleting an athlete's account and everything held about them.

In this order, each write a short transaction of its own:

1. Their device tokens are revoked, so every ingest server closes their connections within
   its token watch (about two seconds) and takes nothing more from them.
2. Their activities' points go, ``CHUNK_POINTS`` per transaction, newest first, and the
   routes their activities shaped are marked for drawing again.
3. The user row goes, and with it, through the foreign keys' ON DELETE CASCADE, every row
   about them: activities and their events, flags and moderators' decisions about them,
   comments and kudos they gave (on other athletes' activities too) and received, follows,
   requests and blocks both ways, privacy zones, tokens, sign-in sessions, engagement
   records and risks, badges, challenges and group memberships, route signals and
   suggestions, settings. Their failed sign-ins (kept by username) go too. A moderator's
   decisions about other athletes stay, without the moderator.
4. Those routes are drawn, named and measured again from the activities left (or deleted
   when none is left); a crash before that leaves them marked, for the worker's next round.
5. Redis: their lines on every leaderboard and the live state of their activities.

Nothing else holds them: no model file keeps its training rows (the anomaly forest, the
drop-off model and the suggestions are fitted on figures and trained again on what is left),
and there is no file archive yet.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import DeviceToken, LoginAttempt, User
from core.activities.tables import Activity
from core.storage.engine import write_transaction
from core.storage.points import delete_newest

log = logging.getLogger(__name__)

JOB = "delete_account"
CHUNK_POINTS = 5_000
REST_S = 0.005  # after each chunk on SQLite: the ingest server's retries get the lock in between


def delete_account(Session: sessionmaker[Session], user_id: int, redis=None) -> dict:
    """Delete the account ``user_id`` and everything about them (see the module's text);
    counts of what went. Safe to run again after a crash: it starts over from what is left."""
    from core.routes.matching import refresh
    from core.routes.tables import Route, RouteActivity

    with write_transaction(Session, JOB) as s:
        user = s.get(User, user_id)
        if user is None:
            return {"deleted": False}
        username = user.username
        s.execute(update(DeviceToken).where(DeviceToken.user_id == user_id).values(revoked=True))
    with Session() as s:
        activity_ids = list(s.scalars(select(Activity.id).where(Activity.user_id == user_id)))
        routes = set(s.scalars(select(RouteActivity.route_id).where(RouteActivity.user_id == user_id,
                                                                    RouteActivity.route_id.is_not(None))))
    points = 0
    for activity_id in activity_ids:
        while True:
            with write_transaction(Session, JOB) as s:
                held = time.perf_counter()
                gone = delete_newest(s, activity_id, CHUNK_POINTS)
                sqlite = s.get_bind().dialect.name == "sqlite"
            points += gone
            if sqlite:
                time.sleep(time.perf_counter() - held + REST_S)
            if not gone:
                break
    with write_transaction(Session, JOB) as s:
        if routes:
            s.execute(update(Route).where(Route.id.in_(sorted(routes))).values(dirty=True))
        s.execute(delete(LoginAttempt).where(LoginAttempt.key == f"user:{username}"))
        s.execute(delete(User).where(User.id == user_id))
    for route_id in sorted(routes):  # drawn, named and measured again from what is left, or gone
        refresh(Session, route_id)
    removed = forget_in_redis(redis, user_id, activity_ids) if redis is not None else 0
    log.info("account %s deleted: %d activities, %d points, %d Redis entries", user_id, len(activity_ids), points,
             removed)
    return {"deleted": True, "activities": len(activity_ids), "points": points, "routes_redrawn": len(routes),
            "redis_entries": removed}


def forget_in_redis(redis, user_id: int, activity_ids: list[int]) -> int:
    """Remove the athlete's leaderboard lines and their activities' live state; how many
    entries went."""
    from core.activities.live_board import INDEX
    from core.activities.live_board import KEY_PREFIX as LIVE_PREFIX
    from core.social.leaderboards import KEY_PREFIX as BOARD_PREFIX
    from core.social.leaderboards import member

    removed = 0
    for key in redis.scan_iter(match=f"{BOARD_PREFIX}:*", count=1000):
        if redis.type(key) in ("zset", b"zset"):
            removed += int(redis.zrem(key, member(user_id)) or 0)
    for start in range(0, len(activity_ids), 1000):
        part = activity_ids[start:start + 1000]
        removed += int(redis.delete(*[f"{LIVE_PREFIX}{a}" for a in part]) or 0)
        removed += int(redis.zrem(INDEX, *[str(a) for a in part]) or 0)
    return removed
