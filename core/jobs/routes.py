"""The route job: match the activities completed (or changed) since the last round
against the routes near them (``core.routes.matching``), in batches, each activity planned
with no transaction open and written in one short transaction."""

from __future__ import annotations

import time

from core.routes.matching import match_pending

ROUTE_BATCH = 50  # activities per round; a full batch means the worker is behind

__all__ = ["ROUTE_BATCH", "match_routes"]


def match_routes(Session, limit: int = ROUTE_BATCH, audit: bool = False) -> dict:
    """One batch of route matching; returns what it did (nothing when nothing was pending).
    With ``audit``, routes that lost activities to a deletion are recomputed too."""
    began = time.monotonic()
    done = match_pending(Session, limit=limit, audit=audit)
    if not done:
        return {}
    return {"routes": {**done, "seconds": round(time.monotonic() - began, 3)}}
