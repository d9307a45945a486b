"""Points from devices: validated, numbered and stored through ``core.storage.points``.

Which activities take points (an open one; else ActivityClosed, or NotFound when there is
none) is decided by ``refusal`` alone, for ``ingest_points`` here and for the ingest
server, whose group commit reads the statuses with ``lock_statuses`` on its own driver
connection and inserts with ``core.storage.points.FastInsert``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.activities.lifecycle import OPEN_STATUSES, ActivityClosed, ActivityError, NotFound
from core.activities.tables import Activity
from core.storage.points import POINT_FIELDS, insert_points

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    """What a batch did: points newly stored and points already there."""

    stored: int
    duplicates: int


def refusal(activity_id: int, status: str | None) -> ActivityError | None:
    """Why an activity in ``status`` takes no points: NotFound when there is no such activity
    (``status`` None), ActivityClosed when it is no longer open; None when it takes them."""
    if status is None:
        return NotFound(f"no activity {activity_id}")
    if status not in OPEN_STATUSES:
        return ActivityClosed(f"activity {activity_id} is {status}: it takes no more points")
    return None


def require_open(activity_id: int, status: str | None) -> None:
    """Raise ``refusal``'s error unless the activity takes points."""
    error = refusal(activity_id, status)
    if error is not None:
        raise error


def lock_statuses(cur, dialect: str, activity_ids: list[int]) -> dict[int, str]:
    """Begin a transaction on ``cur`` (a DBAPI cursor: the ingest server's group commit) and
    read the status of each of ``activity_ids`` that exists, locked until it ends.

    No status change or deletion can enter the transaction before it ends: SQLite takes its
    write lock first (BEGIN IMMEDIATE), PostgreSQL share-locks the rows (a status change
    waits for the commit). Points inserted in it for activities that ``refusal`` lets
    through therefore need no foreign-key check, which the connection of
    ``core.storage.points.fast_insert_connection`` leaves out on SQLite."""
    if dialect == "sqlite":
        cur.execute("BEGIN IMMEDIATE")
        mark, lock = "?", ""
    else:
        mark, lock = "%s", " ORDER BY id FOR SHARE"  # rows locked in id order, as every writer does
    marks = ",".join([mark] * len(activity_ids))
    cur.execute(f"SELECT id, status FROM activities WHERE id IN ({marks}){lock}", activity_ids)
    return dict(cur.fetchall())


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
    require_open(activity.id, activity.status)
    rows = point_rows(activity.id, points)
    if not rows:
        return IngestResult(0, 0)
    # Within one batch the first copy of a seq wins, like a resend of the same batch.
    unique = list({row["seq"]: row for row in reversed(rows)}.values())
    stored = insert_points(s, unique)
    activity.point_count = (activity.point_count or 0) + stored
    return IngestResult(stored=stored, duplicates=len(rows) - stored)
