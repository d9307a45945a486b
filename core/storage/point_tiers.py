"""The points' side of the storage tiers: where an archived activity's points are read
from, the activity page's views that bring one back, and the activity brought back into the
table before points are added to it or taken from it. ``core.storage.points`` reads and
writes through these; ``core.storage.tiers`` moves whole activities with them.

``archive``          the archive the settings name
``hot_rows``         an activity's rows in the table, as the archive takes them
``archived_rows``    an archived file's rows
``point_tuples``     such rows as POINT_COLUMNS tuples, to insert
``insert_archived``  such tuples back into the table, the activity still archived
``make_hot``         an archived activity's points back in the table (caller's transaction)
``warm``             ``make_hot`` for the archived ones among activities about to get points
``note_view``        a view of an archived activity counted (views bring it back)
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from core.activities.tables import Activity
from core.config import load_settings
from core.storage import cold
from core.storage.base import utcnow
from core.storage.point_rows import POINT_FIELDS, RoutePoint, insert_keys

log = logging.getLogger(__name__)

READ_APART = timedelta(minutes=1)  # views of an archived activity closer than this count once


@functools.lru_cache(maxsize=4)
def _archive_at(url: str | None, data_dir: str) -> cold.Archive:
    return cold.open_archive(replace(load_settings(), archive_url=url, data_dir=Path(data_dir)))


def archive() -> cold.Archive:
    """The archive the settings name (opened once per location)."""
    settings = load_settings()
    return _archive_at(settings.archive_url, str(settings.data_dir))


def hot_rows(s: Session, activity_id: int) -> np.ndarray:
    """An activity's rows in the table (seq, t, lat, lon, ele, acc, hr, cad; NaN for
    missing), by sequence."""
    rows = s.execute(select(RoutePoint.seq, RoutePoint.t, *(getattr(RoutePoint, f) for f in POINT_FIELDS))
                     .where(RoutePoint.activity_id == activity_id).order_by(RoutePoint.seq)).all()
    return np.array([tuple(r) for r in rows], dtype=np.float64) if rows else np.empty((0, 8))


def archived_rows(user_id: int, name: str, columns: list[str] | None = None) -> np.ndarray:
    """An archived file's rows (as ``hot_rows``, or ``columns`` of them, which start with
    seq), by sequence."""
    rows = cold.read(archive(), user_id, name, columns)
    return rows[np.argsort(rows[:, 0], kind="stable")]


def note_view(Session, activity_id: int) -> None:
    """Count a view of an archived activity (views a minute apart count once; enough of them
    bring it back, ``core.storage.tiers``); a view more than the settings'
    ``tier_hot_window_days`` after the last starts the count again, so that only an activity
    read often comes back. Nothing for one in the table. A short write of its own, never
    inside another."""
    now = utcnow()
    with Session() as s:
        if s.scalar(select(Activity.points_tier).where(Activity.id == activity_id)) != "cold":
            return
    window = timedelta(days=load_settings().tier_hot_window_days)  # only for an archived activity
    try:
        with Session() as s, s.begin():
            s.execute(update(Activity).where(
                Activity.id == activity_id, Activity.points_tier == "cold",
                Activity.cold_read_at.is_(None) | (Activity.cold_read_at < now - READ_APART)).values(
                cold_reads=case((Activity.cold_read_at.is_(None) | (Activity.cold_read_at < now - window), 1),
                                else_=Activity.cold_reads + 1),
                cold_read_at=now))
    except Exception:  # noqa: BLE001 - a view is served even when it cannot be counted
        log.warning("the view of archived activity %s was not counted", activity_id, exc_info=True)


def point_tuples(activity_id: int, rows: np.ndarray) -> list[tuple]:
    """Rows (as ``hot_rows``) as POINT_COLUMNS tuples, None for missing values."""
    return [(activity_id, int(r[0]), float(r[1]), *(None if not np.isfinite(v) else float(v) for v in r[2:]))
            for r in rows]


def make_hot(s: Session, activity_id: int) -> None:
    """Bring an archived activity's points back into the table within the caller's
    transaction, before points are added to it or taken from it; its file is left to the
    sweep (``core.storage.tiers``)."""
    q = select(Activity).where(Activity.id == activity_id, Activity.points_tier == "cold")
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(of=Activity)
    activity = s.scalars(q).first()
    if activity is None or not activity.cold_file:
        return
    rows = archived_rows(activity.user_id, activity.cold_file)
    insert_keys(s, point_tuples(activity.id, rows), {activity.id: activity.user_id})
    activity.points_tier, activity.cold_file, activity.cold_reads = "hot", None, 0
    activity.cold_read_at = utcnow()
    s.flush()


def insert_archived(s: Session, user_id: int, rows: list[tuple]) -> None:
    """Insert an archived activity's rows back (POINT_COLUMNS tuples; ``user_id`` its
    athlete), skipping those already in the table; the activity stays archived until
    ``core.storage.tiers`` marks it."""
    insert_keys(s, rows, {row[0]: user_id for row in rows[:1]})


def warm(s: Session, activity_ids) -> dict[int, int]:
    """Bring back the archived activities among those about to get points; each one's
    athlete by activity id (an unknown id is missing: its rows fail as the foreign key says)."""
    ids = sorted({int(a) for a in activity_ids})
    if not ids:
        return {}
    owner: dict[int, int] = {}
    for activity_id, user_id, tier in s.execute(select(Activity.id, Activity.user_id, Activity.points_tier)
                                                .where(Activity.id.in_(ids))).all():
        owner[activity_id] = user_id
        if tier == "cold":
            make_hot(s, activity_id)
    return owner
