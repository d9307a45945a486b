"""Anomaly detection in the running system: the saved model, scoring stored activities,
the moderators' decisions and what they feed back, and the athlete's crop.

A flagged activity is provisional: it stays visible to its athlete and followers, but its
``held`` mark keeps it out of leaderboards until a moderator decides. A confirmed flag keeps
it out for good (the athlete sees why); after a confirmation or a crop request the athlete's
crop goes back to the moderators, still held, and only a moderator releases it (the states and
what may move them are in ``core.anomaly.flags``). Scoring, the expensive part, runs with no
write transaction open; each verdict is then written in a short one, because SQLite has one
writer and the ingest server's commits wait for it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.activities import apply_summary, count_points, get_owned_activity, recorded_track
from core.anomaly.detector import assess
from core.anomaly.flags import AWAITING_MODERATOR, CROP, ModerationError, apply_event, is_held, score_event
from core.anomaly.model import DEFAULT_THRESHOLD, Baseline, ModelFileError, PopulationModel, train_sport
from core.anomaly.training import feature_rows, population, real_recordings
from core.cleaning import clean_track
from core.config import Settings
from core.db import write_transaction
from core.models import (
    MODERATION_ACTIONS,
    Activity,
    ActivityEvent,
    ActivityFlag,
    ModerationDecision,
    RoutePoint,
    User,
    utcnow,
)
from core.points import Track
from core.text import clean
from core.trackstats import Summary, summarise

log = logging.getLogger("core.anomaly")

MODEL_FILE = "anomaly.pkl"
THRESHOLD_FILE = "threshold.json"
HISTORY_LIMIT = 30
CANDIDATE_LIMIT = 60
# Recalibration waits for this many decided flags of each kind.
CALIBRATION_MIN = 5
RETRAIN_EVERY_S = 24 * 3600
DB_TRAINING_LIMIT = 3000


def model_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "models"


def load_model(settings: Settings) -> PopulationModel | None:
    """The saved model, or None when there is none yet (a refused file raises)."""
    path = model_dir(settings) / MODEL_FILE
    if not path.exists():
        return None
    return PopulationModel.load(path)


def train(settings: Settings, Session=None, say=None) -> PopulationModel:
    """Train on everything available, save, and return the model."""
    say = say or (lambda text: None)
    real = real_recordings(settings.shared_tracks_dir)
    rows = feature_rows(population(real))
    sources = {"shared_recordings": len(real), "generated": True}
    if Session is not None:
        with Session() as s:
            db_rows = _database_rows(s)
        for sport, extra in db_rows.items():
            rows[sport].extend(extra)
        sources["database_activities"] = sum(len(v) for v in db_rows.values())
    model = PopulationModel.train({sport: np.array(r) for sport, r in rows.items()}, sources)
    # Validation: how often ordinary activities would be flagged by the forest alone, on a
    # fifth of them that a second forest (trained on the rest) never saw.
    rng = random.Random(1)
    validation = {}
    for sport, sport_rows in rows.items():
        shuffled = list(sport_rows)
        rng.shuffle(shuffled)
        n = len(shuffled) // 5
        validation[sport] = {"rows": len(shuffled)}
        if n >= 5:
            check = train_sport(np.array(shuffled[n:]))
            flagged = check.probabilities(np.array(shuffled[:n])) >= 0.5
            validation[sport] |= {"held_out": n, "held_out_flag_rate": round(float(flagged.mean()), 4)}
    model.meta["validation"] = validation
    model.save(model_dir(settings) / MODEL_FILE)
    say(f"anomaly model trained on {sum(len(v) for v in rows.values())} activities "
        f"({', '.join(f'{k}: {v}' for k, v in sources.items())}) and saved to {model_dir(settings) / MODEL_FILE}")
    return model


def ensure_model(settings: Settings, Session=None) -> PopulationModel:
    """The saved model, training one first (and saying so on stderr) when there is none."""
    try:
        model = load_model(settings)
    except ModelFileError as exc:
        print(f"{exc}; training a new one", file=sys.stderr)
        model = None
    if model is None:
        print("no trained anomaly model yet: training one from the data available", file=sys.stderr)
        model = train(settings, Session, say=lambda text: print(text, file=sys.stderr))
    return model


def _database_rows(s: Session) -> dict[str, list]:
    """Feature rows of activities the detector scored and nobody found wrong."""
    from core.anomaly.features import MODEL_FEATURES

    out = {"run": [], "ride": []}
    rows = s.execute(select(ActivityFlag.sport, ActivityFlag.features)
                     .where(ActivityFlag.status.in_(("clear", "dismissed")))
                     .order_by(ActivityFlag.scored_at.desc()).limit(DB_TRAINING_LIMIT)).all()
    for sport, values in rows:
        if sport in out and values:
            out[sport].append(np.array([_num(values.get(name)) for name in MODEL_FEATURES]))
    return out


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def calibration(settings: Settings) -> dict:
    """The last recalibration the worker saved ({} before the first)."""
    try:
        saved = json.loads((model_dir(settings) / THRESHOLD_FILE).read_text())
        return saved if isinstance(saved, dict) and isinstance(saved.get("threshold"), (int, float)) else {}
    except (OSError, ValueError):
        return {}


def threshold(settings: Settings) -> float:
    """The flagging threshold: recalibrated from decisions when there are enough."""
    return float(calibration(settings).get("threshold", DEFAULT_THRESHOLD))


def _history(s: Session, user_id: int, sport: str, exclude: int) -> Baseline | None:
    rows = s.scalars(select(ActivityFlag.features)
                     .where(ActivityFlag.user_id == user_id, ActivityFlag.sport == sport,
                            ActivityFlag.activity_id != exclude,
                            ActivityFlag.status.in_(("clear", "dismissed")))
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


def _clean_json(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_json(v) for v in value]
    return value


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


def assess_stored(s: Session, activity: Activity, model: PopulationModel | None,
                  limit: float = DEFAULT_THRESHOLD, track: Track | None = None) -> Scoring:
    """Judge a stored activity (or ``track``, a changed version of it); reads only."""
    if track is None:
        track, _, _ = recorded_track(s, activity)
    result = assess(track, activity.sport, model, _history(s, activity.user_id, activity.sport, activity.id),
                    lambda fp: _candidates(s, activity, fp["centroid"]), threshold=limit)
    verdict = result.verdict
    return Scoring(
        flagged=bool(verdict.flagged), score=float(verdict.score), reasons=list(verdict.reasons),
        codes=" ".join(sorted({h.code for h in verdict.hits}))[:200], verdict=_clean_json(verdict.to_dict()),
        features=_clean_json(dict(result.features.values)), fingerprint=result.fingerprint,
        centroid=tuple(result.fingerprint["centroid"]) if result.fingerprint else None,
        model_version=(model.meta.get("trained_at", "") if model else "rules only")[:64])


def _locked_activity(s: Session, activity_id: int) -> Activity | None:
    """The activity, its row locked until the transaction ends (PostgreSQL; SQLite has one
    writer anyway)."""
    return s.scalars(select(Activity).where(Activity.id == activity_id).with_for_update(of=Activity)).first()


def record_verdict(s: Session, activity_id: int, result: Scoring, crop: dict | None = None) -> ActivityFlag:
    """Write a verdict as the activity's flag, its status moved through the transition table
    (by the score, or by the athlete's crop when ``crop`` describes it); refusals raise."""
    # The activity's row first, then its flag's: every writer of a flag locks in this order.
    activity = _locked_activity(s, activity_id)
    flag = s.get(ActivityFlag, activity_id)
    status = flag.status if flag else None
    new = (apply_event(status, score_event(result.flagged)) if crop is None
           else apply_event(status, CROP, flagged=result.flagged))
    if flag is None:
        flag = ActivityFlag(activity_id=activity.id, user_id=activity.user_id)
        s.add(flag)
    if crop is not None:
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
    s.flush()
    return flag


def score_activity(s: Session, activity: Activity, model: PopulationModel | None,
                   limit: float = DEFAULT_THRESHOLD) -> ActivityFlag:
    """Score a completed activity and record the verdict, in the caller's transaction."""
    return record_verdict(s, activity.id, assess_stored(s, activity, model, limit))


def score_pending(Session: sessionmaker[Session], model: PopulationModel | None, limit: float,
                  batch: int = 200) -> int:
    """Score completed activities that have no verdict yet, oldest completion first; returns
    how many verdicts were written.

    Each is judged with no write transaction open, then written in a short one of its own:
    SQLite has one writer, and the ingest server's commits wait for it.
    """
    with Session() as s:
        ids = s.scalars(select(Activity.id).outerjoin(ActivityFlag, ActivityFlag.activity_id == Activity.id)
                        .where(Activity.status == "completed", ActivityFlag.activity_id.is_(None))
                        .order_by(Activity.completed_at, Activity.id).limit(batch)).all()
    written = 0
    for activity_id in ids:
        # Closed before the write, so that SQLite's read snapshot is released.
        with Session() as s:
            activity = s.get(Activity, activity_id)
            if activity is None or activity.status != "completed":
                continue
            result = assess_stored(s, activity, model, limit)
        written += _write_if_pending(Session, activity_id, result)
    return written


def _write_if_pending(Session: sessionmaker[Session], activity_id: int, result: Scoring) -> int:
    """Write a verdict unless the activity got one meanwhile (its athlete cropped it) or is
    no longer a completed activity; 1 if written."""
    with write_transaction(Session, "anomaly_scoring") as s:
        activity = _locked_activity(s, activity_id)
        if activity is None or activity.status != "completed" or s.get(ActivityFlag, activity_id) is not None:
            return 0
        record_verdict(s, activity_id, result)
        return 1


def decide(s: Session, activity_id: int, moderator: User, action: str, note: str = "") -> ActivityFlag:
    """A moderator's decision on a flag, logged with who and when."""
    if moderator.role != "moderator":
        raise ModerationError("only moderators decide on flagged activities")
    if action not in MODERATION_ACTIONS:
        raise ModerationError(f"action must be one of {', '.join(MODERATION_ACTIONS)}")
    activity = _locked_activity(s, activity_id)
    flag = s.get(ActivityFlag, activity_id)
    if activity is None or flag is None:
        raise ModerationError(f"activity {activity_id} is not flagged")
    flag.status = apply_event(flag.status, action)
    activity.held = is_held(flag.status)
    s.add(ModerationDecision(activity_id=activity_id, moderator_id=moderator.id, action=action,
                             note=(clean(note or "")).strip()[:2000], score=flag.score))
    s.flush()
    return flag


def decided_cases(s: Session) -> list[tuple[float, bool]]:
    """(score, cheat?) of every flag a moderator confirmed or dismissed (latest decision)."""
    latest = (select(ModerationDecision.activity_id, func.max(ModerationDecision.id).label("last"))
              .where(ModerationDecision.action.in_(("confirm", "dismiss")))
              .group_by(ModerationDecision.activity_id).subquery())
    rows = s.execute(select(ModerationDecision.score, ModerationDecision.action)
                     .join(latest, latest.c.last == ModerationDecision.id)).all()
    return [(float(score), action == "confirm") for score, action in rows]


def flag_precision(s: Session) -> dict:
    """How many decided flags moderators confirmed."""
    cases = decided_cases(s)
    confirmed = sum(1 for _, cheat in cases if cheat)
    return {"decided": len(cases), "confirmed": confirmed, "dismissed": len(cases) - confirmed,
            "precision": confirmed / len(cases) if cases else None}


def recalibrate(s: Session, settings: Settings) -> dict:
    """Move the threshold to where the decided cases say it separates best (F1), when
    there are at least CALIBRATION_MIN of each kind; the choice is saved for the worker."""
    cases = decided_cases(s)
    positives = sum(1 for _, cheat in cases if cheat)
    negatives = len(cases) - positives
    current = threshold(settings)
    if positives < CALIBRATION_MIN or negatives < CALIBRATION_MIN:
        return {"threshold": current, "changed": False,
                "why": f"needs {CALIBRATION_MIN} confirmed and {CALIBRATION_MIN} dismissed flags "
                       f"(have {positives} and {negatives})"}
    best = (-1.0, current)
    for candidate in sorted({round(score, 4) for score, _ in cases} | {current}):
        if not 0.3 <= candidate <= 0.95:
            continue
        tp = sum(1 for score, cheat in cases if cheat and score >= candidate)
        fp = sum(1 for score, cheat in cases if not cheat and score >= candidate)
        fn = positives - tp
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        best = max(best, (f1, candidate))
    path = model_dir(settings) / THRESHOLD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threshold": best[1], "f1": best[0], "positives": positives,
                                "negatives": negatives, "at": time.time()}))
    return {"threshold": best[1], "changed": best[1] != current, "f1": best[0]}


def queue(s: Session, sport: str | None = None, code: str | None = None, limit: int = 50):
    """Flags awaiting a decision (or a crop), highest score first, with their activities."""
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
    baseline = _history(s, user_id, sport, exclude)
    if baseline is None:
        return None
    median, _, count = baseline.metrics["speed"]
    return {"speed_mps": math.exp(median), "count": count}


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
    removed = int(s.scalar(select(func.count()).select_from(RoutePoint)
                           .where(RoutePoint.activity_id == activity.id,
                                  RoutePoint.t >= t0, RoutePoint.t <= t1)) or 0)
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


def _figures(distance_m, moving_time_s, avg_speed_mps, max_speed_mps) -> dict:
    return _clean_json({"distance_m": distance_m, "moving_time_s": moving_time_s,
                        "avg_speed_mps": avg_speed_mps, "max_speed_mps": max_speed_mps})


def _crop_history(flag: ActivityFlag, crop: dict, result: Scoring) -> dict:
    """The flag's crop history with this crop added (the reasons before the first kept)."""
    history = dict(flag.crop or {})
    if not history:
        history = {"status_before": flag.status, "score_before": flag.score, "reasons_before": list(flag.reasons or [])}
    entry = {**crop, "before": {**crop["before"], "score": flag.score},
             "after": {**crop["after"], "score": result.score}}
    # A new dict, not the old one changed in place: the JSON column is written when replaced.
    return {**history, "crops": [*history.get("crops", []), _clean_json(entry)]}


def crop_activity(Session: sessionmaker[Session], activity_id: int, owner_id: int, t0: float, t1: float,
                  model: PopulationModel | None, limit: float = DEFAULT_THRESHOLD) -> ActivityFlag:
    """Remove the points the owner recorded from t0 to t1, recompute the activity and score it
    again: worked out with no write transaction open, then written in one short one.

    A crop of an activity a moderator confirmed or asked to crop goes back to the moderators
    (``cropped``, still held) with its new score; any other is scored afresh."""
    t0, t1 = float(t0), float(t1)
    with Session() as s:
        activity = get_owned_activity(s, activity_id, owner_id)
        plan = plan_crop(s, activity, t0, t1)
        result = assess_stored(s, activity, model, limit, track=plan.track)
    with write_transaction(Session, "crop") as s:
        activity = get_owned_activity(s, activity_id, owner_id, lock=True)
        removed = s.execute(delete(RoutePoint).where(RoutePoint.activity_id == activity_id,
                                                     RoutePoint.t >= t0, RoutePoint.t <= t1)).rowcount
        if removed != plan.removed or count_points(s, activity_id) != plan.left:
            raise ModerationError("the activity changed while the crop was worked out; try again")
        # The range removed is a pause: the straight line across it (the car ride home)
        # counts for neither distance nor moving time, nor for best efforts.
        s.add_all([ActivityEvent(activity_id=activity_id, command="pause", status="paused", at=t0),
                   ActivityEvent(activity_id=activity_id, command="resume", status="active", at=t1)])
        apply_summary(activity, plan.summary)
        return record_verdict(s, activity_id, result, crop=plan.record)
