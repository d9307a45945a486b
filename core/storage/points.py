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
    ``seq_times``          each point's time by sequence number (phone apps' hints)

Read by viewer (None when ``core.social.visibility`` says the viewer may not see the activity;
without what the athlete hides from others, ``core.social.privacy``, when it is not theirs)
    ``viewer_track``       the track as ``stored_track``
    ``viewer_route``       the positions as ``routes`` has them

Read in bulk
    ``routes``             the positions of many activities at once (heatmaps, previews)
    ``newest_point_times`` the newest point's time of many activities at once

Tiers
    ``hot_rows``           an activity's rows in the table, as the archive takes them
    ``archived_rows``      an archived file's rows
    ``point_tuples``       such rows as POINT_COLUMNS tuples, to insert
    ``insert_archived``    such tuples back into the table, the activity still archived
    ``make_hot``           an archived activity's points back in the table (caller's transaction)
    ``note_view``          a view of an archived activity counted (views bring it back)

Delete
    ``delete_range``       the points recorded within a time range (a crop)
    ``delete_newest``      the newest points of an activity (an unfinished import, a chunk at a time)
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from datetime import timedelta

import numpy as np
from sqlalchemy import (
    Engine,
    Float,
    ForeignKey,
    Integer,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.pool import PoolProxiedConnection

from core.activities.tables import Activity
from core.config import load_settings
from core.social.privacy import hiding_for, visible_positions, visible_track
from core.social.visibility import can_view
from core.storage import cold
from core.storage.base import Base, utcnow
from core.tracks.track import Track


class RoutePoint(Base):
    """One GPS fix of an activity (the seed's Route table), keyed by the device's sequence."""

    __tablename__ = "route_points"

    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"),
                                             primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The activity's athlete: a distributed PostgreSQL (Citus) keeps an athlete's points with
    # their activities by it; erasure and exports find them by it. Every insert below fills it.
    user_id: Mapped[int] = mapped_column(Integer)
    t: Mapped[float] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    ele: Mapped[float | None] = mapped_column(Float)
    acc: Mapped[float | None] = mapped_column(Float)
    hr: Mapped[float | None] = mapped_column(Float)
    cad: Mapped[float | None] = mapped_column(Float)


log = logging.getLogger(__name__)

POINT_FIELDS = ("lat", "lon", "ele", "acc", "hr", "cad")
POINT_COLUMNS = ("activity_id", "seq", "t", *POINT_FIELDS)
NO_EXTRAS = (None, None, None, None)  # ele, acc, hr, cad of a plain fix (a five-value row)
BULK_CHUNK = 200  # activities per query of a bulk read
OWNER_CACHE = 100_000  # activities whose athlete the ingest connection remembers (PostgreSQL)
READ_APART = timedelta(minutes=1)  # reads of an archived activity closer than this count once

# ---------------------------------------------------------------------------------------
# Write


def insert_points(s: Session, rows: list[dict]) -> int:
    """Insert point rows, skipping (activity_id, seq) pairs already stored; return how many."""
    owner = _warm(s, (r["activity_id"] for r in rows))
    rows = [{**r, "user_id": owner.get(r["activity_id"])} for r in rows]
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (insert(RoutePoint).on_conflict_do_nothing(index_elements=["activity_id", "seq"])
            .returning(RoutePoint.seq))
    # RETURNING names the rows really inserted; executemany's rowcount is not reliable.
    return len(s.execute(stmt, rows).all())


NEW_KEYS_CHUNK = 100  # rows per statement of ``insert_new_keys`` (900 parameters)


def insert_new_keys(s: Session, rows: list[tuple]) -> set[tuple[int, int]]:
    """Insert point rows (tuples in POINT_COLUMNS order) of one or more activities, skipping
    (activity_id, seq) pairs already stored; return the pairs this insert stored. One
    multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` per ``NEW_KEYS_CHUNK`` rows,
    written for the driver (SQLite and PostgreSQL both take it): the phones' fixes come this
    way, and SQLAlchemy's per-row work would cost more than the database's."""
    owner = _warm(s, (r[0] for r in rows))
    return _insert_keys(s, rows, owner)


def _insert_keys(s: Session, rows: list[tuple], owner: dict[int, int]) -> set[tuple[int, int]]:
    if not rows:
        return set()
    conn = s.connection()
    mark = "%s" if conn.dialect.name == "postgresql" else "?"
    one = "(" + ", ".join([mark] * (len(POINT_COLUMNS) + 1)) + ")"
    columns = ", ".join((*POINT_COLUMNS, "user_id"))
    stored: set[tuple[int, int]] = set()
    for k in range(0, len(rows), NEW_KEYS_CHUNK):
        part = rows[k:k + NEW_KEYS_CHUNK]
        sql = (f"INSERT INTO route_points ({columns}) VALUES {', '.join([one] * len(part))} "
               "ON CONFLICT (activity_id, seq) DO NOTHING RETURNING activity_id, seq")
        flat = [value for row in part for value in (*row, owner.get(row[0]))]
        stored.update((int(a), int(q)) for a, q in conn.exec_driver_sql(sql, tuple(flat)).all())
    return stored


def insert_new_points(s: Session, rows: list[tuple]) -> None:
    """Insert rows (tuples in POINT_COLUMNS order) into an activity that has none of their
    seqs yet, as the ingest server does: COPY on PostgreSQL, the driver's executemany on
    SQLite, with no conflict check and no ORM, to keep an import's transactions short."""
    owner = _warm(s, (r[0] for r in rows))
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


class FastInsert:
    """The ingest server's hot path: inserts on one DBAPI connection, in the caller's
    transaction, that skip (activity, seq) pairs already stored and tell which were new.

    Rows are tuples in POINT_COLUMNS order, either all nine or the first five (a plain fix,
    whose elevation, accuracy, heart rate and cadence are all None). PostgreSQL: COPY into a
    per-connection staging table, then one insert that skips what exists. SQLite: INSERT OR
    IGNORE, counted by the connection's changes. Make a new one for every new connection
    (``fast_insert_connection`` makes one set up for it)."""

    def __init__(self, driver_connection, dialect: str):
        self.driver = driver_connection
        self.dialect = dialect
        self._staging_ready = False
        self._owner: dict[int, int] = {}  # each activity's athlete (an activity never changes hands)

    def __call__(self, cur, rows: list[tuple]) -> set[tuple[int, int]]:
        """Insert ``rows`` on ``cur`` (a cursor of this connection); the new (activity_id, seq)."""
        owner = self._owners(cur, {r[0] for r in rows})
        if self.dialect == "postgresql":
            return self._postgres(cur, rows, owner)
        return self._sqlite(cur, rows, owner)

    def _owners(self, cur, ids: set[int]) -> dict[int, int]:
        # SQLite may give a deleted newest activity's id to the next one: look up every time.
        if self.dialect != "postgresql" or len(self._owner) > OWNER_CACHE:
            self._owner.clear()
        missing = [a for a in ids if a not in self._owner]
        if missing:
            mark = "%s" if self.dialect == "postgresql" else "?"
            cur.execute(f"SELECT id, user_id FROM activities WHERE id IN ({', '.join([mark] * len(missing))})",
                        tuple(missing))
            self._owner.update((int(a), int(u)) for a, u in cur.fetchall())
        return self._owner

    def _postgres(self, cur, rows: list[tuple], owner: dict[int, int]) -> set[tuple[int, int]]:
        if not self._staging_ready:
            cur.execute("CREATE TEMP TABLE IF NOT EXISTS staging_points"
                        " (LIKE route_points INCLUDING DEFAULTS) ON COMMIT DELETE ROWS")
            self._staging_ready = True
        columns = f"{', '.join(POINT_COLUMNS)}, user_id"
        with cur.copy(f"COPY staging_points ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row((*row, *NO_EXTRAS, owner.get(row[0])) if len(row) == 5
                               else (*row, owner.get(row[0])))
        cur.execute(f"INSERT INTO route_points ({columns}) SELECT {columns} FROM staging_points"
                    " ON CONFLICT DO NOTHING RETURNING activity_id, seq")
        return set(cur.fetchall())

    def _sqlite(self, cur, rows: list[tuple], owner: dict[int, int]) -> set[tuple[int, int]]:
        # The ingest connection is the only writer while it holds the lock, so counting the
        # changes the insert made tells whether every row was new (the usual case: no
        # resends). Only when some were not does it look up which pairs were stored before.
        keys = [(r[0], r[1]) for r in rows]
        cur.execute("SELECT coalesce(max(rowid), 0) FROM route_points")
        rowid_mark = cur.fetchone()[0]
        before = self.driver.total_changes
        plain = [(*r, owner.get(r[0])) for r in rows if len(r) == 5]
        if plain:
            cur.executemany("INSERT OR IGNORE INTO route_points (activity_id, seq, t, lat, lon, user_id)"
                            " VALUES (?, ?, ?, ?, ?, ?)", plain)
        if len(plain) < len(rows):
            cur.executemany("INSERT OR IGNORE INTO route_points (activity_id, seq, t, lat, lon, ele, acc, hr, cad, user_id)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [(*r, owner.get(r[0])) for r in rows if len(r) == 9])
        unique = set(keys)
        if self.driver.total_changes - before == len(unique) == len(keys):
            return unique
        # Some rows were already there: recover which ones this transaction added.
        inserted = set()
        for activity_id, seq in unique:
            cur.execute("SELECT rowid FROM route_points WHERE activity_id = ? AND seq = ?", (activity_id, seq))
            row = cur.fetchone()
            if row is not None and row[0] > rowid_mark:
                inserted.add((activity_id, seq))
        return inserted


def fast_insert_connection(engine: Engine, lock_timeout_ms: int, sqlite_cache_kib: int) -> PoolProxiedConnection:
    """A driver connection of its own for ``FastInsert``, for a writer that must never wait
    for a lock (the ingest server's group commit, which runs on its event loop).

    SQLite: no busy wait (another writer's lock answers "busy" at once); its commits never
    checkpoint the WAL (that would stall the writer while pages are copied: the caller runs
    ``core.storage.engine.checkpoint_wal`` elsewhere); a page cache of ``sqlite_cache_kib``
    (every open activity appends to its own leaf of the (activity, seq) index, so a commit
    touches one page per activity); and foreign keys off: only point inserts run on it, each
    after the locked status check of ``core.activities.ingest.lock_statuses``, which stands
    for the foreign key. PostgreSQL: a row lock is given up on after ``lock_timeout_ms``.

    Never give it back to the pool (``invalidate()`` it when done): no other caller expects
    those settings."""
    raw = engine.raw_connection()
    cur = raw.cursor()
    try:
        if engine.dialect.name == "sqlite":
            cur.execute(f"PRAGMA cache_size=-{int(sqlite_cache_kib)}")
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.execute("PRAGMA busy_timeout=0")
        else:
            cur.execute(f"SET lock_timeout = {int(lock_timeout_ms)}")
    finally:
        cur.close()
    if engine.dialect.name != "sqlite":
        raw.commit()
    return raw

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


def positions(s: Session, activity_id: int) -> list[tuple[float, float | None, float | None]]:
    """(t, lat, lon) of the activity's points in time order (lat and lon None without a fix)."""
    rows = [tuple(r) for r in s.execute(select(RoutePoint.t, RoutePoint.lat, RoutePoint.lon)
                                        .where(_hot(activity_id))
                                        .order_by(RoutePoint.t, RoutePoint.seq))]
    if rows or (where := _cold(s, activity_id)) is None:
        return rows
    arr = archived_rows(*where, columns=["seq", "t", "lat", "lon"])
    arr = arr[np.lexsort((arr[:, 0], arr[:, 1]))]
    return [(float(t), _none_if_nan(lat), _none_if_nan(lon)) for t, lat, lon in arr[:, 1:4]]


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
# Tiers


@functools.lru_cache(maxsize=4)
def _archive_at(url: str | None, data_dir: str) -> cold.Archive:
    return cold.open_archive(load_settings())


def archive() -> cold.Archive:
    """The archive the settings name."""
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
    bring it back, ``core.storage.tiers``); nothing for one in the table. A short write of its
    own, never inside another."""
    now = utcnow()
    with Session() as s:
        if s.scalar(select(Activity.points_tier).where(Activity.id == activity_id)) != "cold":
            return
    try:
        with Session() as s, s.begin():
            s.execute(update(Activity).where(
                Activity.id == activity_id, Activity.points_tier == "cold",
                Activity.cold_read_at.is_(None) | (Activity.cold_read_at < now - READ_APART)).values(
                cold_reads=Activity.cold_reads + 1, cold_read_at=now))
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
    _insert_keys(s, point_tuples(activity.id, rows), {activity.id: activity.user_id})
    activity.points_tier, activity.cold_file, activity.cold_reads = "hot", None, 0
    activity.cold_read_at = utcnow()
    s.flush()


def insert_archived(s: Session, user_id: int, rows: list[tuple]) -> None:
    """Insert an archived activity's rows back (POINT_COLUMNS tuples; ``user_id`` its
    athlete), skipping those already in the table; the activity stays archived until
    ``core.storage.tiers`` marks it."""
    _insert_keys(s, rows, {row[0]: user_id for row in rows[:1]})


def _warm(s: Session, activity_ids) -> dict[int, int]:
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

# ---------------------------------------------------------------------------------------
# Read by viewer: where what a viewer may see of a track is decided


def viewer_track(s: Session, viewer_id: int | None, activity: Activity | None) -> Track | None:
    """The activity's track as ``stored_track`` has it, if ``viewer_id`` may see the activity,
    without what its athlete hides from others (``core.social.privacy``); else None."""
    if activity is None or not can_view(s, viewer_id, activity):
        return None
    return visible_track(hiding_for(s, viewer_id, activity.user_id), stored_track(s, activity))


def viewer_route(s: Session, viewer_id: int | None,
                 activity: Activity | None) -> tuple[np.ndarray, np.ndarray] | None:
    """The activity's positions (latitudes, longitudes) as ``routes`` has them, if
    ``viewer_id`` may see the activity, without what its athlete hides from others; else
    None (two empty arrays when it has none)."""
    if activity is None or not can_view(s, viewer_id, activity):
        return None
    empty = np.empty(0), np.empty(0)
    lat, lon = routes(s, [activity.id]).get(activity.id, empty)
    return visible_positions(hiding_for(s, viewer_id, activity.user_id), lat, lon)

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
