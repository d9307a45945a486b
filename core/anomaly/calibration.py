"""The flagging threshold, calibrated on moderators' decisions."""

from __future__ import annotations

import json
import logging
import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.anomaly.model import DEFAULT_THRESHOLD
from core.anomaly.registry import model_dir
from core.anomaly.tables import ModerationDecision
from core.config import Settings

log = logging.getLogger(__name__)
THRESHOLD_FILE = "threshold.json"
# Recalibration waits for this many decided flags of each kind.
CALIBRATION_MIN = 5


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
