"""Scoring stored activities: the verdict on an activity's track (against the model, the
athlete's history and nearby routes of others) and writing it as the activity's flag.

A flagged activity is provisional: it stays visible to its athlete and followers, but its
``held`` mark keeps it out of leaderboards until a moderator decides. A confirmed flag keeps
it out for good (the athlete sees why); after a confirmation or a crop request the athlete's
crop goes back to the moderators, still held, and only a moderator releases it (the states and
what may move them are in ``core.anomaly.flags``).

Moderators see only what scoring flags, so their decisions alone could show the threshold too
low but never too high. Scoring therefore draws a random sample of the activities it clears
just below the threshold (within ``SAMPLE_BAND`` of it), ``SAMPLE_RATE`` of them, into the
moderators' queue as ``sampled``: not held, and nothing is shown to the athlete. The draw
is a keyed hash of the activity's id under the installation's secret key, so scoring an
activity again (after a crop) draws the same, and an athlete who sees their ids cannot tell
which ones would be drawn (nor re-upload until one is safe). ``core.anomaly.calibration`` weighs each decided sample as the cleared activities it
stands for. Scoring, the expensive part, runs with no
write transaction open; each verdict is then written in a short one, because SQLite has one
writer and the ingest server's commits wait for it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities.summary import recorded_track
from core.activities.tables import Activity
from core.anomaly import failures
from core.anomaly.detector import assess
from core.anomaly.flags import CROP, FOUND_FINE, apply_event, is_held, score_event
from core.anomaly.model import DEFAULT_THRESHOLD, Baseline, PopulationModel, installation_key
from core.anomaly.registry import model_dir
from core.anomaly.tables import ActivityFlag, PendingCrop, ScoringFailure
from core.config import load_settings
from core.devices.hints import stored_hints
from core.storage.base import utcnow
from core.storage.engine import write_transaction
from core.tracks.track import Track
from core.units import json_safe

log = logging.getLogger(__name__)
HISTORY_LIMIT = 30
CANDIDATE_LIMIT = 60
# The random sample of cleared activities sent to the moderators: those scored within
# SAMPLE_BAND below the threshold (the ones a somewhat lower threshold would flag; scores run
# 0-1 and calibration keeps the threshold within 0.3-0.95), one in twenty of them: a few extra
# items per hundred activities cleared near the threshold, so the queue stays mostly flags.
# Calibration weighs a decided sample as 1/SAMPLE_RATE activities: change the rate and the
# samples decided before it are weighed by the new one.
SAMPLE_BAND = 0.15
SAMPLE_RATE = 0.05
_SAMPLE_KEYS: dict[Path, bytes] = {}


def sample_key() -> bytes:
    """The installation's secret key for the sample's draw: the model folder's signing key
    (created, owner-readable only, on first use), read once per folder."""
    folder = model_dir(load_settings())
    key = _SAMPLE_KEYS.get(folder)
    if key is None:
        key = _SAMPLE_KEYS[folder] = installation_key(folder)
    return key


def drawn_for_sample(activity_id: int, score: float, limit: float, key: bytes | None = None) -> bool:
    """Whether an activity scored clear at ``score`` goes to the moderators as a random sample:
    it lies within SAMPLE_BAND below ``limit`` and its id's draw (HMAC-SHA256 of the id under
    ``key``, by default the installation's secret: the same at every scoring, unpredictable
    without the key) falls within SAMPLE_RATE."""
    if not limit - SAMPLE_BAND <= score < limit:
        return False
    digest = hmac.new(sample_key() if key is None else key, str(int(activity_id)).encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < SAMPLE_RATE


def history(s: Session, user_id: int, sport: str, exclude: int) -> Baseline | None:
    """The athlete's usual figures in a sport, from their newest activities found fine
    (``exclude`` left out); None without enough of them."""
    rows = s.scalars(select(ActivityFlag.features)
                     .where(ActivityFlag.user_id == user_id, ActivityFlag.sport == sport,
                            ActivityFlag.activity_id != exclude,
                            ActivityFlag.status.in_(FOUND_FINE))
                     .order_by(ActivityFlag.scored_at.desc()).limit(HISTORY_LIMIT)).all()
    return Baseline.from_history([r for r in rows if r])


def _candidates(s: Session, activity: Activity, centroid) -> list[tuple[str, dict]]:
    """Other athletes' activities stored before this one, whose routes lie near it."""
    if centroid is None:
        return []
    lat, lon = centroid
    rows = s.execute(select(ActivityFlag.activity_id, ActivityFlag.fingerprint, User.name)
                     .join(User, User.id == ActivityFlag.user_id)
                     .where(ActivityFlag.user_id != activity.user_id, ActivityFlag.activity_id < activity.id,
                            ActivityFlag.fingerprint.is_not(None),
                            ActivityFlag.centroid_lat.between(lat - 0.03, lat + 0.03),
                            ActivityFlag.centroid_lon.between(lon - 0.06, lon + 0.06))
                     .limit(CANDIDATE_LIMIT)).all()
    return [(f"activity {aid} by {name}", fp) for aid, fp, name in rows]


@dataclass
class Scoring:
    """A verdict computed from an activity's track, ready to be written as its flag."""

    flagged: bool
    score: float
    reasons: list
    codes: str
    verdict: dict
    features: dict
    fingerprint: dict | None
    centroid: tuple[float, float] | None
    model_version: str
    sampled: bool = False  # scored clear and drawn for the moderators' random sample


def assess_stored(s: Session, activity: Activity, model: PopulationModel | None,
                  limit: float = DEFAULT_THRESHOLD, track: Track | None = None, pauses=None) -> Scoring:
    """Judge a stored activity (or ``track``, a changed version of it, paused at ``pauses``);
    reads only. The stored activity is judged with its own pauses (the athlete's pause and
    resume, and a crop's removed range): a recording gap across one is no reason to flag."""
    if track is None:
        track, intervals, _ = recorded_track(s, activity)
        pauses = intervals if pauses is None else pauses
    # A phone app's own motion hints, when its fixes carried them: one signal for the vehicle
    # model, never a reason alone (``core.anomaly.detector.vehicle_hits``).
    hints = stored_hints(s, activity.id)
    result = assess(track, activity.sport, model, history(s, activity.user_id, activity.sport, activity.id),
                    lambda fp: _candidates(s, activity, fp["centroid"]), threshold=limit, pauses=pauses or (),
                    hints=hints)
    verdict = result.verdict
    flagged, score = bool(verdict.flagged), float(verdict.score)
    return Scoring(
        flagged=flagged, score=score, reasons=list(verdict.reasons),
        codes=" ".join(sorted({h.code for h in verdict.hits}))[:200], verdict=json_safe(verdict.to_dict()),
        features=json_safe(dict(result.features.values)), fingerprint=json_safe(result.fingerprint),
        centroid=tuple(result.fingerprint["centroid"]) if result.fingerprint else None,
        model_version=(model.meta.get("trained_at", "") if model else "rules only")[:64],
        sampled=not flagged and drawn_for_sample(activity.id, score, limit))


def locked_activity(s: Session, activity_id: int) -> Activity | None:
    """The activity, its row locked until the transaction ends (PostgreSQL; SQLite has one
    writer anyway)."""
    return s.scalars(select(Activity).where(Activity.id == activity_id).with_for_update(of=Activity)).first()


def record_verdict(s: Session, activity_id: int, result: Scoring, crops: list[dict] | None = None) -> ActivityFlag:
    """Write a verdict as the activity's flag, its status moved through the transition table
    (by the score and the sample's draw, or by the athlete's crops, in order, when ``crops``
    describes them: all scored at once); refusals raise."""
    # The activity's row first, then its flag's: every writer of a flag locks in this order.
    activity = locked_activity(s, activity_id)
    flag = s.get(ActivityFlag, activity_id)
    status = flag.status if flag else None
    new = (apply_event(status, score_event(result.flagged, result.sampled)) if crops is None
           else apply_event(status, CROP, flagged=result.flagged, sampled=result.sampled))
    if flag is None:
        flag = ActivityFlag(activity_id=activity.id, user_id=activity.user_id)
        s.add(flag)
    for crop in crops or []:
        flag.crop = _crop_history(flag, crop, result)
    flag.sport = activity.sport
    flag.score = result.score
    flag.status = new
    flag.reasons = result.reasons
    flag.codes = result.codes
    flag.verdict = result.verdict
    flag.features = result.features
    flag.fingerprint = result.fingerprint
    flag.centroid_lat, flag.centroid_lon = result.centroid if result.centroid else (None, None)
    flag.model_version = result.model_version
    flag.scored_at = utcnow()
    activity.held = is_held(new)
    failures.clear(s, activity_id)
    s.flush()
    return flag


def score_activity(s: Session, activity: Activity, model: PopulationModel | None,
                   limit: float = DEFAULT_THRESHOLD) -> ActivityFlag:
    """Score a completed activity and record the verdict, in the caller's transaction."""
    return record_verdict(s, activity.id, assess_stored(s, activity, model, limit))


def score_pending(Session: sessionmaker[Session], model: PopulationModel | None, limit: float,
                  batch: int = 200, pause: failures.Pause | None = None, now: float | None = None) -> int:
    """Score completed activities that have no verdict yet, oldest completion first; returns
    how many verdicts were written.

    Each is judged with no write transaction open, then written in a short one of its own:
    SQLite has one writer, and the ingest server's commits wait for it. One whose scoring
    fails is written down and waits (``core.anomaly.failures``); the others go on. With
    ``pause`` (a loop's ``failures.Pause``), a round after rounds that failed as a whole is
    put off unless an activity completed since (``now``: the loop's monotonic clock).
    """
    clock = time.monotonic if now is None else (lambda: now)
    ids = pending_ids(Session, batch)
    if pause is not None and pause.waiting(clock(), ids):
        return 0
    written = 0
    tried = failures.Round()
    for activity_id in ids:
        written += tried.attempt(activity_id, lambda a: score_one(Session, a, model, limit))
    tried.settle(Session)
    if pause is not None:
        pause.after(tried, clock())
    return written


def pending_ids(Session: sessionmaker[Session], batch: int) -> list[int]:
    """Up to ``batch`` completed activities without a verdict or with a crop not scored yet
    (``PendingCrop``), oldest completion first, leaving out those whose last scoring failed
    and are not due again."""
    with Session() as s:
        return list(s.scalars(
            select(Activity.id).outerjoin(ActivityFlag, ActivityFlag.activity_id == Activity.id)
            .outerjoin(PendingCrop, PendingCrop.activity_id == Activity.id)
            .outerjoin(ScoringFailure, ScoringFailure.activity_id == Activity.id)
            .where(Activity.status == "completed",
                   or_(ActivityFlag.activity_id.is_(None), PendingCrop.activity_id.is_not(None)), failures.due())
            .order_by(Activity.completed_at, Activity.id).limit(batch)))


def new_version() -> str:
    """A pending crop's version, drawn anew whenever its track changes (a crop, a late fix):
    a scorer writes its verdict only if the version it read is still there."""
    return uuid.uuid4().hex


def pending_crop(s: Session, activity_id: int) -> PendingCrop | None:
    """The activity's crops waiting for their new score, if any."""
    return s.scalars(select(PendingCrop).where(PendingCrop.activity_id == activity_id)).first()


def score_one(Session: sessionmaker[Session], activity_id: int, model: PopulationModel | None, limit: float) -> int:
    """Judge one activity, if it is a completed one without a verdict or with crops not
    scored yet, and write its verdict unless one was written (or another crop came)
    meanwhile; 1 if this wrote it (``core.jobs.stream`` too)."""
    # Closed before the write, so that SQLite's read snapshot is released.
    with Session() as s:
        activity = s.get(Activity, activity_id)
        if activity is None or activity.status != "completed":
            return 0
        crops = pending_crop(s, activity_id)
        if crops is None and s.get(ActivityFlag, activity_id) is not None:
            return 0
        failure = s.get(ScoringFailure, activity_id)
        if failure is not None and (failure.retry_at is None or failure.retry_at > utcnow()):
            return 0  # failed, and not due again (an entry repeated on the stream)
        # A crop's removed range is stored as a pause: the stored track is scored as it is.
        result = assess_stored(s, activity, model, limit)
        version = crops.version if crops is not None else None
    return _write_if_pending(Session, activity_id, result, version)


def _write_if_pending(Session: sessionmaker[Session], activity_id: int, result: Scoring,
                      crops: str | None = None) -> int:
    """Write a verdict unless the activity got one meanwhile (its athlete cropped it) or is
    no longer a completed activity; 1 if written. ``crops``: the version of the pending
    crops scored, written as their verdict only if no crop came since (that one's entry
    scores it again)."""
    with write_transaction(Session, "anomaly_scoring") as s:
        activity = locked_activity(s, activity_id)
        if activity is None or activity.status != "completed":
            return 0
        pending = pending_crop(s, activity_id)
        if crops is None:
            if pending is not None or s.get(ActivityFlag, activity_id) is not None:
                return 0
            record_verdict(s, activity_id, result)
            return 1
        if pending is None or pending.version != crops:
            return 0
        record_verdict(s, activity_id, result, crops=list(pending.crops))
        s.delete(pending)
        return 1


def _crop_history(flag: ActivityFlag, crop: dict, result: Scoring) -> dict:
    """The flag's crop history with this crop added (the reasons before the first kept)."""
    history = dict(flag.crop or {})
    if not history:
        history = {"status_before": flag.status, "score_before": flag.score, "reasons_before": list(flag.reasons or [])}
    entry = {**crop, "before": {**crop["before"], "score": flag.score},
             "after": {**crop["after"], "score": result.score}}
    # A new dict, not the old one changed in place: the JSON column is written when replaced.
    return {**history, "crops": [*history.get("crops", []), json_safe(entry)]}
