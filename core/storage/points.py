"""Route points: the one module that writes and reads them.

Every read of a track's points, for any purpose (map, chart, GPX, stats, scoring, live view,
export), and every write goes through the functions here, so how points are stored, and
which of them a viewer may see, is decided in this module alone.

Tiers: an activity's points are in this table ("hot") or in the archive ("cold",
``core.storage.cold``), as its ``points_tier`` says (``core.storage.tiers`` moves them). Every
read below gives the same points from either, checking the tier in the same query, so an
activity archived meanwhile is read from its file. Points added to or cropped from an
archived activity bring it back first. The activity page counts views (``note_view``); one
viewed often comes back.

Write
    ``insert_points``      device batches: rows already stored (same activity and seq) are skipped
    ``insert_new_keys``    as ``insert_points``, telling which (activity_id, seq) were new
                           (phone apps' fixes, ``core.devices``)
    ``insert_new_points``  bulk file imports: rows none of whose seqs are stored yet
    ``FastInsert``         the ingest server's group commit, on a DBAPI connection of its own
                           (``fast_insert_connection``)

Read by activity
    ``stored_track``       the whole track in time order, as a Track
    ``positions``          (t, lat, lon) rows in time order, for live statistics
    ``last_point_t``       the time of the newest point by sequence
    ``count_points``       how many points, optionally within a time range
    ``points_fingerprint`` count, highest and summed sequence numbers: did the points change?
    ``seq_times``          each point's time by sequence number (phone apps' hints)

Read by viewer (None when ``core.social.visibility`` says the viewer may not see the activity;
without what the athlete hides from others, ``core.social.privacy``, when it is not theirs)
    ``viewer_track``       the track as ``stored_track``
    ``viewer_route``       the positions as ``routes`` has them

Read in bulk
    ``routes``             the positions of many activities at once (heatmaps, previews)
    ``newest_point_times`` the newest point's time of many activities at once

Tiers (``core.storage.point_tiers``, named here too)
    ``hot_rows``           an activity's rows in the table, as the archive takes them
    ``archived_rows``      an archived file's rows
    ``point_tuples``       such rows as POINT_COLUMNS tuples, to insert
    ``insert_archived``    such tuples back into the table, the activity still archived
    ``make_hot``           an archived activity's points back in the table (caller's transaction)
    ``note_view``          a view of an archived activity counted (views bring it back)

The table itself, the multi-row insert and the ingest server's ``FastInsert`` are in
``core.storage.point_rows`` and named here too: callers import them from this module.

Delete
    ``delete_range``       the points recorded within a time range (a crop)
    ``delete_newest``      the newest points of an activity (an unfinished import, a chunk at a time)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.activities.tables import Activity
from core.social.privacy import hiding_for, visible_positions, visible_track
from core.social.visibility import can_view, may_see
from core.storage import cold
from core.storage.point_rows import (  # noqa: F401 - the table and its writers, from here
    NEW_KEYS_CHUNK,
    NO_EXTRAS,
    POINT_COLUMNS,
    POINT_FIELDS,
    FastInsert,
    RoutePoint,
    fast_insert_connection,
    insert_keys,
)
from core.storage.point_tiers import (  # noqa: F401 - the tiers' side of points, from here
    archive,
    archived_rows,
    hot_rows,
    insert_archived,
    make_hot,
    note_view,
    point_tuples,
    warm,
)
from core.tracks.track import Track

log = logging.getLogger(__name__)

BULK_CHUNK = 200  # activities per query of a bulk read

# ---------------------------------------------------------------------------------------
# Write


def insert_points(s: Session, rows: list[dict]) -> int:
    """Insert point rows, skipping (activity_id, seq) pairs already stored; return how many."""
    owner = warm(s, (r["activity_id"] for r in rows))
    rows = [{**r, "user_id": owner.get(r["activity_id"])} for r in rows]
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (insert(RoutePoint).on_conflict_do_nothing()
            .returning(RoutePoint.seq))
    # RETURNING names the rows really inserted; executemany's rowcount is not reliable.
    return len(s.execute(stmt, rows).all())


def insert_new_keys(s: Session, rows: list[tuple]) -> set[tuple[int, int]]:
    """Insert point rows (tuples in POINT_COLUMNS order) of one or more activities, skipping
    (activity_id, seq) pairs already stored; return the pairs this insert stored. One
    multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per ``NEW_KEYS_CHUNK`` rows,
    written for the driver (SQLite and PostgreSQL both take it): the phones' fixes come this
    way, and SQLAlchemy's per-row work would cost more than the database's."""
    owner = warm(s, (r[0] for r in rows))
    return insert_keys(s, rows, owner)


def insert_new_points(s: Session, rows: list[tuple]) -> None:
    """Insert rows (tuples in POINT_COLUMNS order) into an activity that has none of their
    seqs yet, as the ingest server does: COPY on PostgreSQL, the driver's executemany on
    SQLite, with no conflict check and no ORM, to keep an import's transactions short."""
    owner = warm(s, (r[0] for r in rows))
    rows = [(*row, owner.get(row[0])) for row in rows]
    conn = s.connection()
    columns = ", ".join((*POINT_COLUMNS, "user_id"))
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cur, \
                cur.copy(f"COPY route_points ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" * (len(POINT_COLUMNS) + 1))
        conn.exec_driver_sql(f"INSERT INTO route_points ({columns}) VALUES ({marks})", rows)


# ---------------------------------------------------------------------------------------
# Read by activity


def _cold(s: Session, activity_id: int) -> tuple[int, str] | None:
    """(athlete id, file) of the activity when its points are in the archive, read now."""
    row = s.execute(select(Activity.user_id, Activity.cold_file).where(
        Activity.id == activity_id, Activity.points_tier == "cold")).first()
    return (int(row[0]), row[1]) if row is not None and row[1] else None


def _hot(activity_id: int):
    """The condition for an activity's rows in the table, when they are where its points are."""
    return (RoutePoint.activity_id == activity_id) & select(Activity.id).where(
        Activity.id == activity_id, Activity.points_tier == "hot").exists()


def stored_track(s: Session, activity: Activity) -> Track:
    """The stored points of an activity in time order, as a Track."""
    rows = s.execute(
        select(RoutePoint.t, RoutePoint.lat, RoutePoint.lon, RoutePoint.ele, RoutePoint.acc,
               RoutePoint.hr, RoutePoint.cad)
        .where(_hot(activity.id))
        .order_by(RoutePoint.t, RoutePoint.seq)
    ).all()
    if not rows and (where := _cold(s, activity.id)) is not None:
        data = archived_rows(*where)
        data = data[np.lexsort((data[:, 0], data[:, 1]))][:, 1:]
    else:
        # Plain tuples: numpy probes each SQLAlchemy Row for array hooks, which costs more
        # than the query itself on a long track.
        data = np.array([tuple(r) for r in rows], dtype=np.float64) if rows else np.empty((0, 7))
    cols = [np.ascontiguousarray(data[:, i]) for i in range(7)]
    return Track(*cols, sport=activity.sport, name=activity.title)


def _none_if_nan(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def positions(s: Session, activity_id: int, ele: bool = False) -> list[tuple]:
    """(t, lat, lon) of the activity's points in time order (lat and lon None without a fix);
    with ``ele``, (t, lat, lon, ele)."""
    columns = [RoutePoint.t, RoutePoint.lat, RoutePoint.lon] + ([RoutePoint.ele] if ele else [])
    rows = [tuple(r) for r in s.execute(select(*columns).where(_hot(activity_id))
                                        .order_by(RoutePoint.t, RoutePoint.seq))]
    if rows or (where := _cold(s, activity_id)) is None:
        return rows
    arr = archived_rows(*where, columns=["seq", "t", "lat", "lon"] + (["ele"] if ele else []))
    arr = arr[np.lexsort((arr[:, 0], arr[:, 1]))]
    return [(float(r[1]), *(_none_if_nan(v) for v in r[2:])) for r in arr]


def last_point_t(s: Session, activity_id: int) -> float | None:
    """The time of the activity's newest point by sequence (one index probe), or None."""
    t = s.scalar(select(RoutePoint.t).where(_hot(activity_id)).order_by(RoutePoint.seq.desc()).limit(1))
    if t is not None or (where := _cold(s, activity_id)) is None:
        return t
    arr = archived_rows(*where, columns=["seq", "t"])
    return float(arr[-1, 1]) if len(arr) else None


def seq_times(s: Session, activity_id: int) -> dict[int, float]:
    """Each point's time by its sequence number."""
    rows = s.execute(select(RoutePoint.seq, RoutePoint.t).where(_hot(activity_id))).all()
    if rows or (where := _cold(s, activity_id)) is None:
        return {int(q): float(t) for q, t in rows}
    return {int(q): float(t) for q, t in archived_rows(*where, columns=["seq", "t"])}


def points_fingerprint(s: Session, activity_id: int) -> tuple[int, int | None, int | None]:
    """The activity's stored points in three numbers (their count, highest and summed
    sequence numbers): the same before and after means none was added or removed meanwhile."""
    if (where := _cold(s, activity_id)) is not None:
        seq = archived_rows(*where, columns=["seq", "t"])[:, 0].astype(np.int64)
        return int(seq.size), (int(seq.max()) if seq.size else None), (int(seq.sum()) if seq.size else None)
    n, top, total = s.execute(select(func.count(), func.max(RoutePoint.seq), func.sum(RoutePoint.seq))
                              .where(RoutePoint.activity_id == activity_id)).one()
    return int(n), top, (None if total is None else int(total))


def count_points(s: Session, activity_id: int, t0: float | None = None, t1: float | None = None) -> int:
    """How many points are stored for an activity; with ``t0`` and ``t1``, how many were
    recorded from ``t0`` to ``t1`` (both included)."""
    if (where := _cold(s, activity_id)) is not None:
        t = archived_rows(*where, columns=["seq", "t"])[:, 1]
        return int(np.count_nonzero((t >= (-np.inf if t0 is None else t0)) & (t <= (np.inf if t1 is None else t1))))
    q = select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == activity_id)
    if t0 is not None:
        q = q.where(RoutePoint.t >= t0)
    if t1 is not None:
        q = q.where(RoutePoint.t <= t1)
    return int(s.scalar(q) or 0)

# ---------------------------------------------------------------------------------------
# Read by viewer: where what a viewer may see of a track is decided


def viewer_track(s: Session, viewer_id: int | None, activity: Activity | None, review: bool = False
                 ) -> Track | None:
    """The activity's track as ``stored_track`` has it, if ``viewer_id`` may see the activity
    (or, with ``review``, look at it as a moderator), without what its athlete hides from
    others (``core.social.privacy``); else None."""
    if activity is None or not may_see(s, viewer_id, activity, review):
        return None
    return visible_track(hiding_for(s, viewer_id, activity.user_id), stored_track(s, activity), activity.id)


def viewer_route(s: Session, viewer_id: int | None,
                 activity: Activity | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The activity's positions (latitudes, longitudes) as ``routes`` has them, if
    ``viewer_id`` may see the activity, without what its athlete hides from others; else
    None (two empty arrays when it has none)."""
    if activity is None or not can_view(s, viewer_id, activity):
        return None
    empty = np.empty(0), np.empty(0)
    lat, lon = routes(s, [activity.id]).get(activity.id, empty)
    return visible_positions(hiding_for(s, viewer_id, activity.user_id), lat, lon, activity.id)

# ---------------------------------------------------------------------------------------
# Read in bulk


def routes(s: Session, activity_ids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """The positions of each activity, as (latitudes, longitudes) in sequence order (points
    without a latitude left out); an activity with none is missing. Read ``BULK_CHUNK``
    activities per query."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    ids = list(activity_ids)
    for activity_id, rows in _cold_among(s, ids, ["seq", "lat", "lon"]):
        rows = rows[np.isfinite(rows[:, 1])]
        if len(rows):
            out[activity_id] = (np.ascontiguousarray(rows[:, 1]), np.ascontiguousarray(rows[:, 2]))
    for start in range(0, len(ids), BULK_CHUNK):
        rows = s.execute(select(RoutePoint.activity_id, RoutePoint.lat, RoutePoint.lon)
                         .join(Activity, Activity.id == RoutePoint.activity_id)
                         .where(RoutePoint.activity_id.in_(ids[start:start + BULK_CHUNK]),
                                Activity.points_tier == "hot", RoutePoint.lat.is_not(None))
                         .order_by(RoutePoint.activity_id, RoutePoint.seq)).all()
        if not rows:
            continue
        arr = np.array([tuple(r) for r in rows], dtype=float)
        # Sorted by activity: each activity's rows are one run, cut where the id changes.
        cuts = np.flatnonzero(np.diff(arr[:, 0])) + 1
        for part in np.split(arr, cuts):
            out[int(part[0, 0])] = (np.ascontiguousarray(part[:, 1]), np.ascontiguousarray(part[:, 2]))
    return out


def newest_point_times(s: Session, activity_ids: list[int]) -> dict[int, float]:
    """The latest point time of each activity (one without points is missing)."""
    out: dict[int, float] = {}
    ids = list(activity_ids)
    for start in range(0, len(ids), BULK_CHUNK):
        out.update(s.execute(select(RoutePoint.activity_id, func.max(RoutePoint.t))
                             .join(Activity, Activity.id == RoutePoint.activity_id)
                             .where(RoutePoint.activity_id.in_(ids[start:start + BULK_CHUNK]),
                                    Activity.points_tier == "hot")
                             .group_by(RoutePoint.activity_id)).all())
    for activity_id, rows in _cold_among(s, ids, ["seq", "t"]):
        if len(rows):
            out[activity_id] = float(np.max(rows[:, 1]))
    return out


def _cold_among(s: Session, ids: list[int], columns: list[str]) -> Iterator[tuple[int, np.ndarray]]:
    """(id, ``columns`` of its rows) of the archived activities among ``ids``; one whose
    file cannot be read is left out (and logged), not the others."""
    for start in range(0, len(ids), BULK_CHUNK):
        for activity_id, user_id, name in s.execute(select(Activity.id, Activity.user_id, Activity.cold_file).where(
                Activity.id.in_(ids[start:start + BULK_CHUNK]), Activity.points_tier == "cold")):
            try:
                yield activity_id, archived_rows(user_id, name, columns)
            except cold.ArchiveFileError:
                log.exception("activity %s left out: its archived points cannot be read", activity_id)

# ---------------------------------------------------------------------------------------
# Delete


def delete_range(s: Session, activity_id: int, t0: float, t1: float) -> int:
    """Delete the points recorded from ``t0`` to ``t1`` (both included); how many were. An
    archived activity comes back to the table first."""
    make_hot(s, activity_id)
    return s.execute(delete(RoutePoint).where(RoutePoint.activity_id == activity_id,
                                              RoutePoint.t >= t0, RoutePoint.t <= t1)).rowcount


def delete_newest(s: Session, activity_id: int, count: int) -> int:
    """Delete the newest ``count`` sequence numbers of an activity's points (fewer points when
    some are missing); how many points were deleted, 0 when it had none."""
    top = s.scalar(select(RoutePoint.seq).where(RoutePoint.activity_id == activity_id)
                   .order_by(RoutePoint.seq.desc()).limit(1))
    if top is None:
        return 0
    return s.execute(delete(RoutePoint).where(RoutePoint.activity_id == activity_id,
                                              RoutePoint.seq > top - count)).rowcount
