"""Anomaly detection in the running system: the saved model, scoring stored activities,
the moderators' decisions and what they feed back, and the athlete's crop.

A flagged activity is provisional: it stays visible to its athlete and followers, but its
``held`` mark keeps it out of leaderboards until a moderator dismisses the flag. A
confirmed flag keeps it out for good (the athlete sees why); a crop request keeps it out
until the athlete crops the activity and the new version scores clean.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from core.activities import apply_summary, recorded_track, summarise_activity
from core.anomaly.detector import assess
from core.anomaly.model import DEFAULT_THRESHOLD, Baseline, ModelFileError, PopulationModel, train_sport
from core.anomaly.training import feature_rows, population, real_recordings
from core.config import Settings
from core.models import (
    MODERATION_ACTIONS,
    Activity,
    ActivityFlag,
    ModerationDecision,
    RoutePoint,
    User,
    utcnow,
)

log = logging.getLogger("core.anomaly")

MODEL_FILE = "anomaly.pkl"
THRESHOLD_FILE = "threshold.json"
HISTORY_LIMIT = 30
CANDIDATE_LIMIT = 60
# Statuses whose activities are kept out of leaderboards.
HELD = ("flagged", "confirmed", "crop_requested")
# Recalibration waits for this many decided flags of each kind.
CALIBRATION_MIN = 5
RETRAIN_EVERY_S = 24 * 3600
DB_TRAINING_LIMIT = 3000


class ModerationError(ValueError):
    """A moderation or crop request that cannot be honoured."""


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


def score_activity(s: Session, activity: Activity, model: PopulationModel | None,
                   limit: float = DEFAULT_THRESHOLD) -> ActivityFlag:
    """Score a completed activity and record the verdict (re-scoring replaces it)."""
    track, _, _ = recorded_track(s, activity)
    flag = s.get(ActivityFlag, activity.id)
    result = assess(track, activity.sport, model, _history(s, activity.user_id, activity.sport, activity.id),
                    lambda fp: _candidates(s, activity, fp["centroid"]), threshold=limit)
    verdict = result.verdict
    centroid = result.fingerprint["centroid"] if result.fingerprint else None
    if flag is None:
        flag = ActivityFlag(activity_id=activity.id, user_id=activity.user_id)
        s.add(flag)
    flag.sport = activity.sport
    flag.score = float(verdict.score)
    flag.status = "flagged" if verdict.flagged else "clear"
    flag.reasons = verdict.reasons
    flag.codes = " ".join(sorted({h.code for h in verdict.hits}))[:200]
    flag.verdict = _clean_json(verdict.to_dict())
    flag.features = _clean_json(dict(result.features.values))
    flag.fingerprint = result.fingerprint
    flag.centroid_lat, flag.centroid_lon = centroid if centroid else (None, None)
    flag.model_version = (model.meta.get("trained_at", "") if model else "rules only")[:64]
    flag.scored_at = utcnow()
    activity.held = flag.status in HELD
    s.flush()
    return flag


def score_pending(s: Session, model: PopulationModel | None, limit: float, batch: int = 200) -> int:
    """Score completed activities that have no verdict yet, oldest completion first."""
    ids = s.scalars(select(Activity.id).outerjoin(ActivityFlag, ActivityFlag.activity_id == Activity.id)
                    .where(Activity.status == "completed", ActivityFlag.activity_id.is_(None))
                    .order_by(Activity.completed_at, Activity.id).limit(batch)).all()
    for activity_id in ids:
        activity = s.get(Activity, activity_id)
        score_activity(s, activity, model, limit)
    return len(ids)


def decide(s: Session, activity_id: int, moderator: User, action: str, note: str = "") -> ActivityFlag:
    """A moderator's decision on a flag, logged with who and when."""
    if moderator.role != "moderator":
        raise ModerationError("only moderators decide on flagged activities")
    if action not in MODERATION_ACTIONS:
        raise ModerationError(f"action must be one of {', '.join(MODERATION_ACTIONS)}")
    flag = s.get(ActivityFlag, activity_id)
    if flag is None or flag.status == "clear":
        raise ModerationError(f"activity {activity_id} is not flagged")
    flag.status = {"dismiss": "dismissed", "confirm": "confirmed", "request_crop": "crop_requested"}[action]
    s.get(Activity, activity_id).held = flag.status in HELD
    s.add(ModerationDecision(activity_id=activity_id, moderator_id=moderator.id, action=action,
                             note=(note or "").strip()[:2000], score=flag.score))
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
         .where(ActivityFlag.status.in_(("flagged", "crop_requested")))
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


def crop_activity(s: Session, activity: Activity, t0: float, t1: float, model: PopulationModel | None,
                  limit: float = DEFAULT_THRESHOLD) -> ActivityFlag:
    """Remove the points recorded from t0 to t1 (the owner asked), recompute and re-score."""
    if not (math.isfinite(t0) and math.isfinite(t1)) or t1 <= t0:
        raise ModerationError("choose a time range to remove: its end must come after its start")
    removed = s.execute(delete(RoutePoint).where(RoutePoint.activity_id == activity.id,
                                                 RoutePoint.t >= t0, RoutePoint.t <= t1)).rowcount
    if not removed:
        raise ModerationError("no points were recorded in that time range")
    left = s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == activity.id))
    if not left:
        raise ModerationError("that would remove every point; delete the activity instead")
    apply_summary(activity, summarise_activity(s, activity))
    return score_activity(s, activity, model, limit)
