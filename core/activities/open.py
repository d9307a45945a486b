"""Open activities: which are live now, their live stats rebuilt from storage, and closing
the ones their devices abandoned.

An activity is *live* while its device is sending: a point within ``LIVE_RECENT_S`` (or,
before its first point, created within that time). An open activity whose newest point
(or creation, without points) is older than ``ABANDONED_AFTER_S`` was abandoned: the worker
stops and completes it from its points, or discards it when it has none; a file import whose
process died midway is deleted. Every write is a short transaction of its own; the summary is
computed before it opens.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.activities import live_board
from core.activities.cues import CuePrefs
from core.activities.imports import delete_unfinished_import, is_unfinished_import
from core.activities.lifecycle import OPEN_STATUSES, change_status
from core.activities.live import LiveStats, replay_live
from core.activities.shown import hold_hiding_for, settle_shown
from core.activities.summary import apply_summary, pause_intervals, summarise_activity
from core.activities.tables import Activity, ActivityEvent
from core.storage.engine import write_transaction
from core.storage.points import count_points, last_point_t, newest_point_times, positions

log = logging.getLogger(__name__)

LIVE_RECENT_S = 600.0  # an activity with a point this recent shows on the Live page
ABANDONED_AFTER_S = 24 * 3600.0  # an open activity silent this long is closed by the worker
CLOSE_BATCH = 100
LIVE_CANDIDATES = 200  # open activities looked at, newest first, for the live list
LIVE_LIST = 50  # live activities listed at most


@dataclass
class LiveActivity:
    """An activity being recorded now, with its live figures and where they come from:
    ``"redis"`` (the ingest server's published state) or ``"database"`` (rebuilt)."""

    activity: Activity
    stats: dict
    position: tuple | None  # (lat, lon, t) of the last counted fix
    source: str


def last_activity_t(s: Session, activity: Activity) -> float:
    """When the device was last heard of for this activity: its newest point, else its creation."""
    t = last_point_t(s, activity.id)
    return t if t is not None else activity.created_at.timestamp()


def is_live(s: Session, activity: Activity, now: float | None = None) -> bool:
    """Open, with a point (or its creation) within ``LIVE_RECENT_S``."""
    now = time.time() if now is None else now
    return activity.status in OPEN_STATUSES and now - last_activity_t(s, activity) <= LIVE_RECENT_S


def stored_live_stats(s: Session, activity: Activity, prefs: CuePrefs | None = None) -> LiveStats:
    """The activity's live stats recomputed from its stored points and pauses."""
    return replay_live(activity.sport, positions(s, activity.id), pause_intervals(s, activity), prefs)


def live_activities(s: Session, visible, redis=None, now: float | None = None) -> list[LiveActivity]:
    """Open activities matching ``visible`` (a SQL condition on activities, such as
    ``core.social.visibility.live_filter``) with a point (or their creation) within
    ``LIVE_RECENT_S``, newest first. Stats and position come from the ingest server's live
    state in Redis when ``redis`` is given and has them; otherwise they are recomputed from
    the stored points and pauses, as the ingest server does."""
    rows = s.scalars(select(Activity).where(Activity.status.in_(OPEN_STATUSES), visible)
                     .order_by(Activity.created_at.desc()).limit(LIVE_CANDIDATES)).all()
    now = time.time() if now is None else now
    rows = [a for a in rows if is_live(s, a, now)][:LIVE_LIST]
    states = live_board.read(redis) if redis is not None and rows else {}
    out = []
    for a in rows:
        state = states.get(a.id)
        if state is not None and state.get("stats"):
            position = tuple(state["position"]) if state.get("position") else None
            out.append(LiveActivity(a, state["stats"], position, "redis"))
            continue
        live = stored_live_stats(s, a)
        position = (live.anchor[1], live.anchor[2], live.last_t) if live.anchor is not None else None
        out.append(LiveActivity(a, live.snapshot(), position, "database"))
    return out


def abandoned(s: Session, now: float, limit: int = CLOSE_BATCH) -> list[int]:
    """Ids of open activities silent for ``ABANDONED_AFTER_S``, oldest first; an unfinished
    import counts once it was created that long ago, whatever its points' times (they are the
    file's, and say nothing of when its import was last heard of)."""
    cutoff = now - ABANDONED_AFTER_S
    created_before = datetime.fromtimestamp(cutoff, tz=UTC)
    rows = s.execute(select(Activity.id, Activity.status, Activity.source)
                     .where(Activity.status.in_(OPEN_STATUSES), Activity.created_at < created_before)
                     .order_by(Activity.id).limit(limit * 4)).all()
    newest = newest_point_times(s, [aid for aid, _, _ in rows])
    return [aid for aid, status, source in rows
            if is_unfinished_import(status, source) or newest.get(aid) is None or newest[aid] < cutoff][:limit]


def close_abandoned(Session: sessionmaker[Session], now: float | None = None, limit: int = CLOSE_BATCH) -> dict:
    """Stop and complete (from its points) or discard each abandoned activity; an import whose
    process died midway is deleted instead (counted as discarded), since its points are only
    part of the file. Returns counts."""
    now = time.time() if now is None else now
    with Session() as s:
        ids = abandoned(s, now, limit)
    done = {"completed": 0, "discarded": 0}
    for activity_id in ids:
        with Session() as s:  # read and compute with no write transaction open
            activity = s.get(Activity, activity_id)
            if activity is None or activity.status not in OPEN_STATUSES:
                continue
            orphan = is_unfinished_import(activity.status, activity.source)
            if not orphan:
                count = count_points(s, activity_id)
                last_t = last_point_t(s, activity_id)
                summary = summarise_activity(s, activity) if count else None
        if orphan:
            # Its points are only part of its file: deleted, a chunk per short transaction.
            if delete_unfinished_import(Session, activity_id, "close_abandoned"):
                done["discarded"] += 1
            continue
        with write_transaction(Session, "close_abandoned") as s:
            hold_hiding_for(s, activity_id)  # before the row (``core.social.privacy.hold_hiding``)
            # Locked first (PostgreSQL; SQLite's write lock is already held): the ingest
            # server's commit share-locks the row, so no batch lands between the count and
            # the status change.
            activity = s.scalars(select(Activity).where(Activity.id == activity_id)
                                 .with_for_update(of=Activity)).first()
            if activity is None or activity.status not in OPEN_STATUSES:
                continue
            if count_points(s, activity_id) != count:
                continue  # the device came back meanwhile: leave it open
            if summary is None:
                change_status(s, activity, "discard", at=now)
                done["discarded"] += 1
                continue
            at = last_t + 1.0
            if activity.status == "created":
                change_status(s, activity, "start", at=summary.start_time or at)
            if activity.status in ("active", "paused"):
                change_status(s, activity, "stop", at=at)
            # The summary was computed from these same points before the transaction;
            # a stop after the last point changes none of it.
            apply_summary(activity, summary)
            settle_shown(s, activity)
            activity.completed_at = datetime.fromtimestamp(at, tz=UTC)
            activity.status = "completed"
            s.add(ActivityEvent(activity_id=activity.id, user_id=activity.user_id, command="complete",
                                status="completed", at=at))
            done["completed"] += 1
    if ids:
        log.info("closed abandoned activities: %s", done)
    return done
