"""The flagging threshold, calibrated on moderators' decisions.

The decisions are on flagged activities (scored at or above the threshold when flagged) and
on the random sample of activities scored clear just below it (``core.anomaly.scoring``): a
confirmed sample is a cheat the threshold let through and can lower it, a dismissed flag a
false alarm and can raise it. Every flagged activity waits for a decision, but only one in
1/SAMPLE_RATE of those below, so a decided sample counts as the 1/SAMPLE_RATE cleared
activities it stands for.
"""

from __future__ import annotations

import json
import logging
import time
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.anomaly.model import DEFAULT_THRESHOLD
from core.anomaly.registry import model_dir
from core.anomaly.scoring import SAMPLE_RATE
from core.anomaly.tables import ModerationDecision
from core.config import Settings

log = logging.getLogger(__name__)
THRESHOLD_FILE = "threshold.json"
# Recalibration waits for this many decided flags (or samples) of each kind.
CALIBRATION_MIN = 5
# What a decided sample counts for: the cleared activities near the threshold it stands for.
SAMPLE_WEIGHT = 1.0 / SAMPLE_RATE


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


class Case(NamedTuple):
    """A moderator's latest confirmation or dismissal: the score then, and whether the activity
    came to the queue as a random sample of cleared ones."""

    score: float
    cheat: bool
    sample: bool

    @property
    def weight(self) -> float:
        return SAMPLE_WEIGHT if self.sample else 1.0


def decided_cases(s: Session) -> list[Case]:
    """Every flag and every sample a moderator confirmed or dismissed (latest decision)."""
    latest = (select(ModerationDecision.activity_id, func.max(ModerationDecision.id).label("last"))
              .where(ModerationDecision.action.in_(("confirm", "dismiss")))
              .group_by(ModerationDecision.activity_id).subquery())
    rows = s.execute(select(ModerationDecision.score, ModerationDecision.action, ModerationDecision.sample)
                     .join(latest, latest.c.last == ModerationDecision.id)).all()
    return [Case(float(score), action == "confirm", bool(sample)) for score, action, sample in rows]


def flag_precision(s: Session) -> dict:
    """How many decided flags moderators confirmed, and how many decided samples (cleared
    activities) they found irregular all the same."""
    cases = decided_cases(s)
    flags = [c for c in cases if not c.sample]
    confirmed = sum(1 for c in flags if c.cheat)
    samples = len(cases) - len(flags)
    return {"decided": len(flags), "confirmed": confirmed, "dismissed": len(flags) - confirmed,
            "precision": confirmed / len(flags) if flags else None,
            "samples": samples, "samples_confirmed": sum(1 for c in cases if c.sample and c.cheat)}


def recalibrate(s: Session, settings: Settings) -> dict:
    """Move the threshold to where the decided cases say it separates best (F1, each sample
    weighed as SAMPLE_WEIGHT activities), when there are at least CALIBRATION_MIN decisions
    of each kind; the choice is saved for the worker."""
    cases = decided_cases(s)
    positives = sum(1 for c in cases if c.cheat)
    negatives = len(cases) - positives
    samples = sum(1 for c in cases if c.sample)
    current = threshold(settings)
    if positives < CALIBRATION_MIN or negatives < CALIBRATION_MIN:
        return {"threshold": current, "changed": False,
                "why": f"needs {CALIBRATION_MIN} confirmed and {CALIBRATION_MIN} dismissed flags or samples "
                       f"(have {positives} and {negatives})"}
    cheats = sum(c.weight for c in cases if c.cheat)
    best = (-1.0, current)
    for candidate in sorted({round(c.score, 4) for c in cases} | {current}):
        if not 0.3 <= candidate <= 0.95:
            continue
        tp = sum(c.weight for c in cases if c.cheat and c.score >= candidate)
        fp = sum(c.weight for c in cases if not c.cheat and c.score >= candidate)
        fn = cheats - tp
        f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
        best = max(best, (f1, candidate))
    path = model_dir(settings) / THRESHOLD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threshold": best[1], "f1": best[0], "positives": positives,
                                "negatives": negatives, "samples": samples, "at": time.time()}))
    return {"threshold": best[1], "changed": best[1] != current, "f1": best[0]}
