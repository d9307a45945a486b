"""The fix-stream job: activities made from phone apps' fixes (``core.devices``) are
completed once their device has gone quiet, and recomputed when a late fix lands after that.

Every round, before scoring:

- an open activity whose device sent nothing new for the idle time (its newest fix and the
  arrival of its last new fix both older than ``TRACKER_DEVICE_IDLE_COMPLETE_S``) is stopped
  just after its newest fix and completed, its sport inferred from its speeds when the device
  token names none (``core.devices.sport``); one with no points is discarded;
- a completed activity a late fix landed in has its summary recomputed and, when it already
  had a verdict that scoring may change (clear, flagged, sampled), is scored again; a
  moderator's decision stands. Routes re-match by themselves when the point count changes.

Each summary and score is computed with no transaction open and written in a short one that
first checks the point count it was computed from: a fix that arrived meanwhile leaves the
activity for the next round.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities.lifecycle import OPEN_STATUSES, change_status, default_title
from core.activities.shown import hold_hiding_for, settle_shown
from core.activities.summary import apply_summary, recorded_track, summarise_activity
from core.activities.tables import Activity, ActivityEvent
from core.anomaly import failures
from core.anomaly.flags import ModerationError
from core.anomaly.scoring import assess_stored, locked_activity, new_version, pending_crop, record_verdict
from core.anomaly.tables import ActivityFlag
from core.devices.hints import stored_hints
from core.devices.sport import infer_sport
from core.devices.tables import DeviceTrack
from core.storage.base import utcnow
from core.storage.engine import write_transaction
from core.storage.points import count_points, last_point_t
from core.tracks.cleaning import clean_track
from core.tracks.stats import Summary, summarise

log = logging.getLogger(__name__)

DEVICE_BATCH = 50  # activities completed, and recomputed, per round at most
RESCORED_STATUSES = ("clear", "flagged", "sampled")  # verdicts a new score may change


def quiet(s: Session, now: float, idle: float, limit: int = DEVICE_BATCH) -> list[int]:
    """Open activities made from fixes whose device has sent nothing new for ``idle`` seconds."""
    cutoff = now - idle
    return list(s.scalars(select(DeviceTrack.activity_id).join(Activity, Activity.id == DeviceTrack.activity_id)
                          .where(Activity.status.in_(OPEN_STATUSES), DeviceTrack.last_t < cutoff,
                                 DeviceTrack.heard_at < cutoff)
                          .order_by(DeviceTrack.activity_id).limit(limit)))


def _summary_as(s: Session, activity: Activity, sport: str) -> Summary:
    """The activity's summary as ``summarise_activity`` computes it, as an activity of ``sport``
    (the cleaning's limits depend on it), without changing the activity."""
    track, intervals, count = recorded_track(s, activity)
    track.sport = sport
    summary = summarise(clean_track(track), points=count, pauses=intervals)
    if count > len(track):
        summary.dropped["paused"] = count - len(track)
    return summary


def complete_quiet(Session: sessionmaker[Session], idle: float, now: float | None = None,
                   limit: int = DEVICE_BATCH) -> dict:
    """Stop and complete (or discard, without points) each activity whose device went quiet."""
    now = time.time() if now is None else now
    with Session() as s:
        ids = quiet(s, now, idle, limit)
    done = {"completed": 0, "discarded": 0, "sports_inferred": 0}
    for activity_id in ids:
        with Session() as s:  # read and compute with no write transaction open
            activity = s.get(Activity, activity_id)
            track_row = s.get(DeviceTrack, activity_id)
            if activity is None or track_row is None or activity.status not in OPEN_STATUSES:
                continue
            count = count_points(s, activity_id)
            sport, summary = activity.sport, None
            if count:
                if track_row.sport_inferred:
                    track, intervals, _ = recorded_track(s, activity)
                    hints = stored_hints(s, activity_id)
                    sport = infer_sport(track, hints.motion if hints is not None else (), intervals)
                summary = _summary_as(s, activity, sport)
            # The newest fix itself: the track's row is written back only now and then
            # (core.devices.fixes.TRACK_WRITE_EVERY_S), so its last_t may lag behind.
            last_t = max(track_row.last_t, last_point_t(s, activity_id) or -math.inf)
        with write_transaction(Session, "device_complete") as s:
            # Locked first (PostgreSQL; SQLite's write lock is already held): a batch of fixes
            # share-locks the row, so none lands between the count and the status change.
            hold_hiding_for(s, activity_id)  # before the row (``core.social.privacy.hold_hiding``)
            activity = locked_activity(s, activity_id)
            track_row = s.get(DeviceTrack, activity_id)
            if activity is None or track_row is None or activity.status not in OPEN_STATUSES:
                continue
            if count_points(s, activity_id) != count or max(track_row.last_t, track_row.heard_at) >= now - idle:
                continue  # the device came back meanwhile: leave it open
            if summary is None:
                change_status(s, activity, "discard", at=now)
                done["discarded"] += 1
                continue
            at = max(last_t, track_row.last_t) + 1.0
            track_row.last_t = max(last_t, track_row.last_t)  # exact from now on
            if activity.status == "created":
                change_status(s, activity, "start", at=summary.start_time or at)
            if activity.status in ("active", "paused"):
                change_status(s, activity, "stop", at=at)
            if sport != activity.sport:
                if activity.title == default_title(activity.sport):
                    activity.title = default_title(sport)
                activity.sport = sport
                done["sports_inferred"] += 1
            # Computed from these same points before the transaction; a stop after the newest
            # fix changes none of it.
            apply_summary(activity, summary)
            settle_shown(s, activity)
            activity.completed_at = datetime.fromtimestamp(at, tz=UTC)
            activity.status = "completed"
            s.add(ActivityEvent(activity_id=activity.id, user_id=activity.user_id, command="complete",
                                status="completed", at=at))
            done["completed"] += 1
    return done


def recompute_late(Session: sessionmaker[Session], model, limit: float, batch: int = DEVICE_BATCH,
                   now: datetime | None = None) -> dict:
    """Recompute the summary of each completed activity a late fix landed in, and score it
    again when its verdict is one a score may change; ``model`` and ``limit`` as scoring's.
    One that fails for a reason of its own is written down and waits (``record_failure``);
    the others go on. A round in which every one failed charges none (``failures.Round``)."""
    done = {"recomputed": 0, "rescored": 0}
    tried = failures.Round(record_failure)
    for activity_id in late_ids(Session, batch, now=now):
        done["recomputed"] += tried.attempt(activity_id, lambda a: recompute_one(Session, a, model, limit, done, now))
    tried.settle(Session)
    return done


def record_failure(Session: sessionmaker[Session], activity_id: int, exc: BaseException,
                   now: datetime | None = None, tried_at: datetime | None = None) -> DeviceTrack | None:
    """Write down a failure to recompute ``activity_id`` after a late fix, and when to try
    again: as scoring waits (``failures.RETRY_AFTER_S``), given up after
    ``failures.MAX_ATTEMPTS`` (the summary stays as it was before the late fixes; the
    worker's ``tracker_worker_recompute_given_up`` counts them) until another late fix lands
    in it (``core.devices.fixes``: it starts afresh). Nothing when it is gone or
    no longer waits to be recomputed. Under the activity's row lock, as recomputations are
    written."""
    now = now or utcnow()
    with write_transaction(Session, "device_recompute") as s:
        activity = locked_activity(s, activity_id)
        track_row = s.get(DeviceTrack, activity_id)
        if activity is None or track_row is None or not track_row.recompute:
            return None
        track_row.recompute_attempts = (track_row.recompute_attempts or 0) + 1
        track_row.recompute_error = failures.describe(exc)
        attempts = track_row.recompute_attempts
        track_row.recompute_retry_at = (now + timedelta(seconds=failures.RETRY_AFTER_S[attempts - 1])
                                        if attempts < failures.MAX_ATTEMPTS else None)
        s.flush()
        s.expunge(track_row)
    if track_row.recompute_retry_at is None:
        log.error("gave up recomputing activity %s after a late fix (%s attempts): %s", activity_id, attempts,
                  track_row.recompute_error)
    else:
        log.warning("recomputing activity %s failed (attempt %s, next at %s): %s", activity_id, attempts,
                    track_row.recompute_retry_at.isoformat(timespec="seconds"), track_row.recompute_error)
    return track_row


def late_ids(Session: sessionmaker[Session], batch: int = DEVICE_BATCH, ids: list[int] | None = None,
             now: datetime | None = None) -> list[int]:
    """Completed activities a late fix landed in, whose summary is stale (of ``ids`` only,
    when given), leaving out those whose recomputation failed and is not due again."""
    query = (select(DeviceTrack.activity_id).join(Activity, Activity.id == DeviceTrack.activity_id)
             .where(DeviceTrack.recompute.is_(True), Activity.status == "completed", due(now)))
    if ids is not None:
        query = query.where(DeviceTrack.activity_id.in_(ids))
    with Session() as s:
        return list(s.scalars(query.order_by(DeviceTrack.activity_id).limit(batch)))


def due(now: datetime | None = None):
    """The condition on ``DeviceTrack`` for a recomputation to be tried now: it never failed,
    or its next attempt is due (never once given up)."""
    return and_(DeviceTrack.recompute_attempts < failures.MAX_ATTEMPTS,
                or_(DeviceTrack.recompute_retry_at.is_(None), DeviceTrack.recompute_retry_at <= (now or utcnow())))


def count_given_up(s: Session) -> int:
    """Completed activities whose recomputation after a late fix was given up on."""
    return s.scalar(select(func.count()).select_from(DeviceTrack).join(Activity, Activity.id == DeviceTrack.activity_id)
                    .where(gave_up())) or 0


def gave_up():
    """The condition on ``DeviceTrack`` joined to ``Activity``: a completed activity whose
    recomputation was given up on (``failures.MAX_ATTEMPTS`` failures)."""
    return and_(DeviceTrack.recompute.is_(True), DeviceTrack.recompute_attempts >= failures.MAX_ATTEMPTS,
                Activity.status == "completed")


def given_up(s: Session, limit: int = 50) -> list[tuple[DeviceTrack, Activity, User]]:
    """The completed activities ``count_given_up`` counts, newest first, with their athletes."""
    return list(s.execute(
        select(DeviceTrack, Activity, User).join(Activity, Activity.id == DeviceTrack.activity_id)
        .join(User, User.id == Activity.user_id)
        .where(gave_up())
        .order_by(DeviceTrack.activity_id.desc()).limit(limit)))


def recompute_again(s: Session, activity_id: int, moderator: User | None = None,
                    now: datetime | None = None) -> bool:
    """Have a given-up recomputation tried at the next round, once more before it is given
    up again (a moderator's request, logged; in the caller's transaction); False if it is
    not given up (recomputed meanwhile, or being tried)."""
    track_row = s.get(DeviceTrack, activity_id, with_for_update=True)
    if track_row is None or not track_row.recompute or track_row.recompute_attempts < failures.MAX_ATTEMPTS:
        return False
    track_row.recompute_attempts = failures.MAX_ATTEMPTS - 1
    track_row.recompute_retry_at = now or utcnow()
    if moderator is not None:
        log.info("moderator %s had activity %s recomputed again after late fixes", moderator.username, activity_id)
    return True


def recompute_one(Session: sessionmaker[Session], activity_id: int, model, limit: float,
                  done: dict | None = None, now: datetime | None = None) -> int:
    """Recompute one activity a late fix landed in, and score it again when its verdict is
    one a score may change (counted in ``done["rescored"]``); 1 if recomputed, 0 when there
    was nothing to do (done already, gone) or more fixes landed meanwhile."""
    with Session() as s:
        activity = s.get(Activity, activity_id)
        track_row = s.get(DeviceTrack, activity_id)
        if activity is None or activity.status != "completed" or track_row is None or not track_row.recompute:
            return 0
        if track_row.recompute_attempts >= failures.MAX_ATTEMPTS or (
                track_row.recompute_retry_at is not None and track_row.recompute_retry_at > (now or utcnow())):
            return 0  # failed, and not due again (an entry repeated on the stream)
        count = count_points(s, activity_id)
        summary = summarise_activity(s, activity)
        flag = s.get(ActivityFlag, activity_id)
        status = flag.status if flag is not None else None
        # Scored as it will be stored (the track with the late fixes, the points counted).
        result = assess_stored(s, activity, model, limit) if status in RESCORED_STATUSES else None
    with write_transaction(Session, "device_recompute") as s:
        hold_hiding_for(s, activity_id)  # before the row (``core.social.privacy.hold_hiding``)
        activity = locked_activity(s, activity_id)
        track_row = s.get(DeviceTrack, activity_id)
        if activity is None or track_row is None or activity.status != "completed":
            return 0
        if count_points(s, activity_id) != count:
            return 0  # more late fixes meanwhile: the next round
        apply_summary(activity, summary)
        settle_shown(s, activity)
        track_row.recompute = False
        track_row.recompute_attempts, track_row.recompute_error, track_row.recompute_retry_at = 0, None, None
        flag = s.get(ActivityFlag, activity_id)
        # A crop waiting for its new score (``PendingCrop``) is scored on this track by the
        # stream: a scorer that read the track before these fixes writes nothing.
        crops = pending_crop(s, activity_id)
        if crops is not None:
            crops.version = new_version()
        elif result is not None and flag is not None and flag.status == status:
            try:
                record_verdict(s, activity_id, result)
                if done is not None:
                    done["rescored"] = done.get("rescored", 0) + 1
            except ModerationError:  # decided meanwhile: the decision stands
                pass
        return 1


def device_activities(Session: sessionmaker[Session], idle: float, model, limit: float,
                      now: float | None = None, late: bool = True) -> dict:
    """The job's round: complete what went quiet, recompute what late fixes changed (unless
    ``late`` is False: the workers share that through a stream, ``core.jobs.stream``)."""
    completed = complete_quiet(Session, idle, now)
    recomputed = recompute_late(Session, model, limit) if late else {}
    out = {k: v for k, v in {**completed, **recomputed}.items() if v}
    if out:
        log.info("fix-stream activities: %s", out)
    return {"devices": out} if out else {}
