"""Points from devices: validated, numbered and stored through ``core.storage.points``."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.activities.lifecycle import OPEN_STATUSES, ActivityClosed, ActivityError
from core.activities.tables import Activity
from core.storage.points import POINT_FIELDS, insert_points

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What a batch did: points newly stored and points already there."""

    stored: int
    duplicates: int


def _clean_number(value, name: str, seq) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ActivityError(f"point {seq}: {name} must be a number", "invalid_point")
    value = float(value)
    if not math.isfinite(value):
        raise ActivityError(f"point {seq}: {name} must be finite", "invalid_point")
    return value


def point_rows(activity_id: int, points: list[dict]) -> list[dict]:
    """Validate a batch's points into rows; raise ActivityError naming the first bad one."""
    rows = []
    for p in points:
        seq = p.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or seq > 2**31 - 1:
            raise ActivityError(f"point sequence number must be a non-negative integer, got {seq!r}",
                                "invalid_point")
        t = _clean_number(p.get("t"), "t", seq)
        if t is None:
            raise ActivityError(f"point {seq}: t (Unix seconds) is required", "invalid_point")
        row = {"activity_id": activity_id, "seq": seq, "t": t}
        for name in POINT_FIELDS:
            row[name] = _clean_number(p.get(name), name, seq)
        rows.append(row)
    return rows


def ingest_points(s: Session, activity: Activity, points: list[dict]) -> IngestResult:
    """Store a batch of points; a point already stored (same seq) is not stored again."""
    if activity.status not in OPEN_STATUSES:
        raise ActivityClosed(f"activity {activity.id} is {activity.status}: it takes no more points")
    rows = point_rows(activity.id, points)
    if not rows:
        return IngestResult(0, 0)
    # Within one batch the first copy of a seq wins, like a resend of the same batch.
    unique = list({row["seq"]: row for row in reversed(rows)}.values())
    stored = insert_points(s, unique)
    activity.point_count = (activity.point_count or 0) + stored
    return IngestResult(stored=stored, duplicates=len(rows) - stored)
