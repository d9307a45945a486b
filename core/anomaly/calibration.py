"""The flagging threshold, calibrated on moderators' decisions.

The decisions are on flagged activities (scored at or above the threshold when flagged) and
on the random sample of activities scored clear just below it (``core.anomaly.scoring``): a
confirmed sample is a cheat the threshold let through and can lower it, a dismissed flag a
false alarm and can raise it. Every flagged activity waits for a decision, but only one in
1/SAMPLE_RATE of those below, so a decided sample counts as the 1/SAMPLE_RATE cleared
activities it stands for.

That weight makes a single sample decision loud (one confirmed sample outweighs many
decided flags), so two guards keep the threshold steady: samples count only once
SAMPLE_MIN of them are decided, and one recalibration moves the threshold at most MAX_STEP
towards where the decisions say it belongs; it gets there over several rounds, each on the
decisions made meanwhile.
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
# Recalibration waits for this many confirmed and this many dismissed cases among those it
# counts (flags, and samples once SAMPLE_MIN are decided).
CALIBRATION_MIN = 5
# What a decided sample counts for: the cleared activities near the threshold it stands for.
SAMPLE_WEIGHT = 1.0 / SAMPLE_RATE
# Decided samples count only once there are this many: each weighs SAMPLE_WEIGHT (20) flags,
# so one or two decisions alone would otherwise set the threshold (one confirmed sample at
# 0.36 among ten decided flags pulled it from 0.70 to 0.36).
SAMPLE_MIN = 5
# The most one recalibration moves the threshold (either way). The best-F1 threshold jumps
# with single heavily weighed decisions; a bounded step turns a jump into a trend that must
# persist over several recalibrations, with moderators seeing the flags and samples each step
# brings, before the threshold goes far. 0.05 is a third of SAMPLE_BAND: the sample keeps
# reaching below any threshold the steps arrive at.
MAX_STEP = 0.05


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


def _f1(cases: list[Case], limit: float) -> float:
    """F1 of flagging at ``limit`` against the decisions, each case weighed."""
    tp = sum(c.weight for c in cases if c.cheat and c.score >= limit)
    fp = sum(c.weight for c in cases if not c.cheat and c.score >= limit)
    fn = sum(c.weight for c in cases if c.cheat) - tp
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def recalibrate(s: Session, settings: Settings) -> dict:
    """Move the threshold towards where the decided cases say it separates best (F1, each
    sample weighed as SAMPLE_WEIGHT activities once SAMPLE_MIN samples are decided), by at
    most MAX_STEP, when the counted cases hold at least CALIBRATION_MIN of each kind; the
    choice is saved for the worker."""
    decided = decided_cases(s)
    samples = sum(1 for c in decided if c.sample)
    cases = decided if samples >= SAMPLE_MIN else [c for c in decided if not c.sample]
    positives = sum(1 for c in cases if c.cheat)
    negatives = len(cases) - positives
    current = threshold(settings)
    if positives < CALIBRATION_MIN or negatives < CALIBRATION_MIN:
        return {"threshold": current, "changed": False,
                "why": f"needs {CALIBRATION_MIN} confirmed and {CALIBRATION_MIN} dismissed flags "
                       f"(or samples, once {SAMPLE_MIN} are decided; have {positives} and {negatives}, "
                       f"{samples} samples)"}
    best = (-1.0, current)
    for candidate in sorted({round(c.score, 4) for c in cases} | {current}):
        if 0.3 <= candidate <= 0.95:
            best = max(best, (_f1(cases, candidate), candidate))
    target = best[1]
    chosen = round(min(max(target, current - MAX_STEP), current + MAX_STEP), 4)
    f1 = _f1(cases, chosen)
    path = model_dir(settings) / THRESHOLD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"threshold": chosen, "f1": f1, "target": target, "positives": positives,
                                "negatives": negatives, "samples": samples if cases is decided else 0,
                                "samples_decided": samples, "at": time.time()}))
    return {"threshold": chosen, "changed": chosen != current, "f1": f1, "target": target}
