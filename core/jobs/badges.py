"""The gamification jobs: assign the weekly challenges of athletes who have none for their
current week, and recount the badges and challenge progress of athletes whose activities
were scored, matched, released, held, cropped or deleted since the last round
(``core.challenges``), in batches, each athlete worked out with no transaction open and
written in one short one; every ten minutes, mark the challenges of weeks that are over;
and let the adaptive policy learn from weeks whose following week is over."""

from __future__ import annotations

import logging
import time

from core.challenges import adaptive
from core.challenges.assign import ASSIGN_BATCH, assign_due, end_weeks
from core.challenges.awards import BADGE_BATCH, award_pending

log = logging.getLogger(__name__)

__all__ = ["ASSIGN_BATCH", "BADGE_BATCH", "assign_challenges", "award_badges", "end_challenge_weeks",
           "learn_challenge_levels"]


def award_badges(Session, limit: int = BADGE_BATCH) -> dict:
    """One batch of badge recounts; returns what it did (nothing when nobody was due)."""
    began = time.monotonic()
    done = award_pending(Session, limit=limit)
    if not done:
        return {}
    return {"badges": {**done, "seconds": round(time.monotonic() - began, 3)}}


def assign_challenges(Session, limit: int = ASSIGN_BATCH, policy: str = "fixed", risk_model=None) -> dict:
    """One batch of weekly challenge assignments (nothing when nobody was due), scoring each
    athlete's drop-off risk first with ``risk_model`` when there is one."""
    began = time.monotonic()
    done = assign_due(Session, limit=limit, policy=policy, risk_model=risk_model)
    if not done:
        return {}
    return {"challenges": {**done, "seconds": round(time.monotonic() - began, 3)}}


def end_challenge_weeks(Session) -> dict:
    missed = end_weeks(Session)
    return {"challenges_missed": missed} if missed else {}


def learn_challenge_levels(Session) -> dict:
    """One batch of the adaptive policy's learning from weeks whose following week is over;
    a failure is logged and leaves the rest of the round to run (the weeks wait)."""
    try:
        done = adaptive.learn(Session)
    except Exception as exc:  # noqa: BLE001 - learning can wait; the round's other jobs cannot
        log.exception("adaptive challenge policy could not learn")
        return {"challenge_levels": {"error": f"{exc.__class__.__name__}: {exc}"[:200]}}
    return {"challenge_levels": done} if done else {}
