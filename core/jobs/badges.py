"""The badge job: recount the badges of athletes whose activities were scored, matched,
released, held, cropped or deleted since the last round (``core.challenges.awards``), in
batches, each athlete worked out with no transaction open and written in one short one."""

from __future__ import annotations

import time

from core.challenges.awards import BADGE_BATCH, award_pending

__all__ = ["BADGE_BATCH", "award_badges"]


def award_badges(Session, limit: int = BADGE_BATCH) -> dict:
    """One batch of badge recounts; returns what it did (nothing when nobody was due)."""
    began = time.monotonic()
    done = award_pending(Session, limit=limit)
    if not done:
        return {}
    return {"badges": {**done, "seconds": round(time.monotonic() - began, 3)}}
