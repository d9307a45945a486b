"""Moderation: the review queue and what a moderator sees of an item, decisions, what the
athlete sees of their own flag, and crops."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities.lifecycle import get_owned_activity
from core.activities.shown import hold_hiding_for, settle_shown
from core.activities.summary import activity_profile, apply_summary, pause_intervals, recorded_track
from core.activities.tables import Activity, ActivityEvent
from core.anomaly import failures
from core.anomaly.flags import AWAITING_MODERATOR, ModerationError, apply_event, is_held
from core.anomaly.model import DEFAULT_THRESHOLD, PopulationModel
from core.anomaly.scoring import (
    Scoring,
    assess_stored,
    history,
    locked_activity,
    new_version,
    pending_crop,
    record_verdict,
)
from core.anomaly.tables import MODERATION_ACTIONS, ActivityFlag, ModerationDecision, PendingCrop
from core.storage.base import utcnow
from core.storage.engine import write_transaction
from core.storage.points import archive, count_points, delete_range, stored_track
from core.storage.tiers import restore_activity
from core.text import clean
from core.tracks.cleaning import clean_track
from core.tracks.stats import Profile, Summary, summarise
from core.tracks.track import Track
from core.units import json_safe

log = logging.getLogger(__name__)


def decide(s: Session, activity_id: int, moderator: User, action: str, note: str = "") -> ActivityFlag:
    """A moderator's decision on a flag, logged with who and when, and whether the activity
    came to the queue as a random sample (a later decision on the same activity keeps that mark)."""
    if moderator.role != "moderator":
        raise ModerationError("only moderators decide on flagged activities")
    if action not in MODERATION_ACTIONS:
        raise ModerationError(f"action must be one of {', '.join(MODERATION_ACTIONS)}")
    activity = locked_activity(s, activity_id)
    flag = s.get(ActivityFlag, activity_id)
    if activity is None or flag is None:
        raise ModerationError(f"activity {activity_id} is not flagged")
    if pending_crop(s, activity_id) is not None and not failures.given_up_on(s, activity_id):
        raise ModerationError("the athlete cropped this activity and it is being scored again; "
                              "decide once its new score is in")
    previous = latest_decision(s, activity_id)
    # Back in the queue after a moderator asked for a crop: it came there as what it was then.
    sample = flag.status == "sampled" or bool(previous and previous.sample
                                              and flag.status in ("crop_requested", "cropped"))
    flag.status = apply_event(flag.status, action)
    activity.held = is_held(flag.status)
    s.add(ModerationDecision(activity_id=activity_id, user_id=activity.user_id, moderator_id=moderator.id, action=action,
                             note=(clean(note or "")).strip()[:2000], score=flag.score, sample=sample))
    s.flush()
    return flag


def queue(s: Session, sport: str | None = None, code: str | None = None, limit: int = 50):
    """Flags awaiting a decision (or a crop), highest score first, with their activities (the
    random samples, scored below the threshold, after the flags)."""
    q = (select(ActivityFlag, Activity).join(Activity, Activity.id == ActivityFlag.activity_id)
         .where(ActivityFlag.status.in_(AWAITING_MODERATOR))
         .order_by(ActivityFlag.score.desc(), ActivityFlag.activity_id).limit(limit))
    if sport:
        q = q.where(ActivityFlag.sport == sport)
    if code:
        q = q.where(ActivityFlag.codes.contains(code))
    return s.execute(q).all()


def usual_figures(s: Session, user_id: int, sport: str, exclude: int) -> dict | None:
    """The athlete's usual average speed and count, for the review page."""
    baseline = history(s, user_id, sport, exclude)
    if baseline is None:
        return None
    median, _, count = baseline.metrics["speed"]
    return {"speed_mps": math.exp(median), "count": count}


def own_flag(s: Session, owner_id: int, activity_id: int) -> ActivityFlag | None:
    """The anomaly verdict on an activity of ``owner_id``'s; None when it has none or is
    someone else's (an athlete sees only their own flags)."""
    flag = s.get(ActivityFlag, activity_id)
    if flag is None or flag.user_id != owner_id:
        return None
    return flag


def latest_decision(s: Session, activity_id: int) -> ModerationDecision | None:
    """The newest moderator's decision on an activity (its note is for the athlete), if any."""
    return s.scalars(select(ModerationDecision).where(ModerationDecision.activity_id == activity_id)
                     .order_by(ModerationDecision.id.desc()).limit(1)).first()


def flagged_stretches(verdict: dict | None) -> list[tuple[float, float]]:
    """The time ranges (Unix seconds) the verdict's rule hits point at; hits without a range
    are left out."""
    hits = (verdict or {}).get("hits", [])
    return [(h["t0"], h["t1"]) for h in hits if h.get("t0") is not None and h.get("t1") is not None]


@dataclass
class ReviewItem:
    """What a moderator sees of a flagged activity."""

    flag: ActivityFlag
    activity: Activity
    athlete: User
    profile: Profile  # the activity's per-point profile, pauses respected
    stretches: list[tuple[float, float]]  # where the rules found something (``flagged_stretches``)
    usual: dict | None  # the athlete's usual figures (``usual_figures``)
    track: Track  # the stored points, as read for the profile (read once)


def review_item(s: Session, activity_id: int) -> ReviewItem | None:
    """A flagged activity as the moderators' page shows it, or None if it has no flag (the
    caller checks that the viewer is a moderator)."""
    row = s.execute(select(ActivityFlag, Activity, User).join(Activity, Activity.id == ActivityFlag.activity_id)
                    .join(User, User.id == Activity.user_id)
                    .where(ActivityFlag.activity_id == activity_id)).first()
    if row is None:
        return None
    flag, activity, athlete = row
    track = stored_track(s, activity)
    _, profile = activity_profile(s, activity, track)
    return ReviewItem(flag, activity, athlete, profile, flagged_stretches(flag.verdict),
                      usual_figures(s, activity.user_id, activity.sport, activity.id), track)


def _figures(distance_m, moving_time_s, avg_speed_mps, max_speed_mps) -> dict:
    """An activity's headline figures, as a crop's record keeps them from before and after."""
    return json_safe({"distance_m": distance_m, "moving_time_s": moving_time_s,
                      "avg_speed_mps": avg_speed_mps, "max_speed_mps": max_speed_mps})


@dataclass
class CropPlan:
    """What a crop will change, worked out before anything is written."""

    track: Track  # the recorded track without the range
    summary: Summary
    removed: int  # stored points in the range (those logged while paused included)
    left: int
    record: dict  # the range and the figures before and after, for the flag's history


def plan_crop(s: Session, activity: Activity, t0: float, t1: float) -> CropPlan:
    """Work out a crop of the points recorded from t0 to t1 (Unix seconds); reads only."""
    t0, t1 = float(t0), float(t1)
    if not (math.isfinite(t0) and math.isfinite(t1)) or t1 <= t0:
        raise ModerationError("choose a time range to remove: its end must come after its start")
    if activity.status != "completed":
        raise ModerationError("only a completed activity can be cropped")
    track, intervals, count = recorded_track(s, activity)
    removed = count_points(s, activity.id, t0, t1)
    if not removed:
        raise ModerationError("no points were recorded in that time range")
    kept = track.take(~((track.t >= t0) & (track.t <= t1)))
    if removed >= count or not len(kept):
        raise ModerationError("that would remove every point; delete the activity instead")
    # What summarise_activity will find once the points are gone and the range is a pause
    # (see crop_activity), worked out without holding the write lock.
    summary = summarise(clean_track(kept), points=count - removed, pauses=[*intervals, (t0, t1)])
    if count - removed > len(kept):
        summary.dropped["paused"] = count - removed - len(kept)
    origin = float(track.t[0]) if len(track) else t0
    record = {"at": time.time(), "t0": t0, "t1": t1, "from_s": max(0.0, t0 - origin), "to_s": max(0.0, t1 - origin),
              "points_removed": removed,
              "before": _figures(activity.distance_m, activity.moving_time_s, activity.avg_speed_mps,
                                 activity.max_speed_mps),
              "after": _figures(summary.distance_m, summary.moving_time_s, summary.avg_speed_mps,
                                summary.max_speed_mps)}
    return CropPlan(kept, summary, removed, count - removed, record)


def crop_activity(Session: sessionmaker[Session], activity_id: int, owner_id: int, t0: float, t1: float,
                  model: PopulationModel | None, limit: float = DEFAULT_THRESHOLD,
                  stream=None) -> ActivityFlag | None:
    """Remove the points the owner recorded from t0 to t1, recompute the activity and score it
    again: worked out with no write transaction open, then written in one short one.

    A crop of an activity a moderator confirmed or asked to crop goes back to the moderators
    (``cropped``, still held) with its new score; any other is scored afresh.

    With ``stream`` (a ``core.jobs.stream.ActivityStream``: Redis is configured), the crop is
    not scored here: it is written down as pending (``PendingCrop``) and published, and a
    scorer of the stream writes its verdict as above; the flag as it stood is returned
    (None without one), unchanged until then. A crop whose publishing fails is relayed with
    the activities still to score."""
    t0, t1 = float(t0), float(t1)
    with Session() as s:
        archived = get_owned_activity(s, activity_id, owner_id).points_tier == "cold"
    if archived:
        # Its points back in the table first, a chunk per short transaction, so the crop's
        # own transaction does not hold the write lock while they go in (one archived again
        # meanwhile is brought back inside it, ``core.storage.points.delete_range``).
        restore_activity(Session, archive(), activity_id)
    with Session() as s:
        activity = get_owned_activity(s, activity_id, owner_id)
        plan = plan_crop(s, activity, t0, t1)
        # Scored as it will be stored: the removed range a pause beside the athlete's own.
        result = None if stream is not None else assess_stored(
            s, activity, model, limit, track=plan.track, pauses=[*pause_intervals(s, activity), (t0, t1)])
    flag = _write_crop(Session, activity_id, owner_id, t0, t1, plan, result)
    if result is None:
        try:
            stream.publish([activity_id])
        except Exception:  # noqa: BLE001 - Redis unreachable: the relay puts it in (pending_ids)
            log.warning("crop of activity %s not published; it is relayed later", activity_id, exc_info=True)
    return flag


def crop_pending(s: Session, owner_id: int, activity_id: int) -> bool:
    """Whether the owner's crop of the activity waits for its new score."""
    crops = pending_crop(s, activity_id)
    return crops is not None and crops.user_id == owner_id


def _write_crop(Session: sessionmaker[Session], activity_id: int, owner_id: int, t0: float, t1: float,
                plan: CropPlan, result: Scoring | None) -> ActivityFlag | None:
    """The crop's one write transaction: the points removed, the range a pause, the figures,
    and the verdict (or, without ``result``, the crop written down for the stream's scorers)."""
    with write_transaction(Session, "crop") as s:
        hold_hiding_for(s, activity_id)  # before the row (``core.social.privacy.hold_hiding``)
        activity = get_owned_activity(s, activity_id, owner_id, lock=True)
        removed = delete_range(s, activity_id, t0, t1)
        if removed != plan.removed or count_points(s, activity_id) != plan.left:
            raise ModerationError("the activity changed while the crop was worked out; try again")
        # The range removed is a pause: the straight line across it (the car ride home)
        # counts for neither distance nor moving time, nor for best efforts.
        s.add_all([ActivityEvent(activity_id=activity_id, user_id=owner_id, command="pause", status="paused", at=t0),
                   ActivityEvent(activity_id=activity_id, user_id=owner_id, command="resume", status="active", at=t1)])
        apply_summary(activity, plan.summary)
        settle_shown(s, activity)
        pending = pending_crop(s, activity_id)
        # The track changed: a scoring that failed on the old one is tried afresh.
        failures.clear(s, activity_id)
        if result is not None:
            # Crops still waiting for the stream's scorers are judged with this one.
            crops = [*(pending.crops if pending is not None else []), plan.record]
            if pending is not None:
                s.delete(pending)
            return record_verdict(s, activity_id, result, crops=crops)
        if pending is None:
            pending = PendingCrop(activity_id=activity_id, user_id=activity.user_id, crops=[])
            s.add(pending)
        # New values, not the old ones changed in place: the JSON column is written when replaced.
        pending.crops = [*pending.crops, json_safe(plan.record)]
        pending.version = new_version()
        pending.cropped_at = utcnow()
        return s.get(ActivityFlag, activity_id)
