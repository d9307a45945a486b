"""The points table and its raw writers: the row model, the multi-row insert that tells
which rows were new, and the ingest server's group-commit insert. Only
``core.storage.points`` and ``core.storage.point_tiers`` use this module; everything else
goes through ``core.storage.points``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Engine, Float, ForeignKeyConstraint, Integer
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.pool import PoolProxiedConnection

from core.storage.base import Base


class RoutePoint(Base):
    """One GPS fix of an activity (the seed's Route table), keyed by the device's sequence."""

    __tablename__ = "route_points"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The activity's athlete, in both keys: a distributed PostgreSQL (Citus) keeps an athlete's
    # points with their activities by it (it wants the distribution column in every key);
    # erasure and exports find them by it. Every insert below fills it.
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    t: Mapped[float] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    ele: Mapped[float | None] = mapped_column(Float)
    acc: Mapped[float | None] = mapped_column(Float)
    hr: Mapped[float | None] = mapped_column(Float)
    cad: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        ForeignKeyConstraint(["activity_id", "user_id"], ["activities.id", "activities.user_id"], ondelete="CASCADE"),
    )


POINT_FIELDS = ("lat", "lon", "ele", "acc", "hr", "cad")
POINT_COLUMNS = ("activity_id", "seq", "t", *POINT_FIELDS)
NO_EXTRAS = (None, None, None, None)  # ele, acc, hr, cad of a plain fix (a five-value row)
OWNER_CACHE = 100_000  # activities whose athlete the ingest connection remembers (PostgreSQL)
NEW_KEYS_CHUNK = 100  # rows per statement of ``insert_new_keys`` (900 parameters)
IDLE_IN_TRANSACTION_MS = 5_000  # the ingest connection's transactions last milliseconds


def insert_keys(s: Session, rows: list[tuple], owner: dict[int, int]) -> set[tuple[int, int]]:
    """Insert rows (tuples in POINT_COLUMNS order), each with its activity's athlete from
    ``owner``, skipping (activity_id, seq) pairs already stored; the pairs this stored."""
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
               "ON CONFLICT DO NOTHING RETURNING activity_id, seq")  # the primary key: a point already stored
        flat = [value for row in part for value in (*row, owner.get(row[0]))]
        stored.update((int(a), int(q)) for a, q in conn.exec_driver_sql(sql, tuple(flat)).all())
    return stored


# ``FastInsert.checked``: the activities share-locked for the statement (a status change
# waits for it; in id order, as every writer that locks several activities takes them), the
# points of the open ones inserted, and both answered in one result.
CHECKED_INSERT = """
WITH locked AS (
    SELECT id, status, user_id FROM activities WHERE id = ANY(%s) ORDER BY id FOR SHARE
), stored AS (
    INSERT INTO route_points (activity_id, seq, t, lat, lon, ele, acc, hr, cad, user_id)
    SELECT v.activity_id, v.seq, v.t, v.lat, v.lon, v.ele, v.acc, v.hr, v.cad, locked.user_id
    FROM unnest(%s::int[], %s::int[], %s::float8[], %s::float8[], %s::float8[], %s::float8[],
                %s::float8[], %s::float8[], %s::float8[]) AS v(activity_id, seq, t, lat, lon, ele, acc, hr, cad)
    JOIN locked ON locked.id = v.activity_id AND locked.status = ANY(%s)
    ON CONFLICT DO NOTHING
    RETURNING activity_id, seq
)
SELECT id, status, NULL::int FROM locked
UNION ALL
SELECT activity_id, NULL, seq FROM stored
"""


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

    def checked(self, cur, rows: list[tuple], activity_ids: list[int],
                open_statuses: tuple[str, ...]) -> tuple[dict[int, str], set[tuple[int, int]]]:
        """PostgreSQL, on a connection in autocommit: one statement that share-locks the rows
        of ``activity_ids``, inserts the ``rows`` of those whose status is one of
        ``open_statuses`` (skipping pairs already stored), and commits. Returns each existing
        activity's status and the (activity_id, seq) pairs stored.

        One round trip instead of six (begin, the locked status check, COPY's two, the
        insert, commit): the live load commits a few rows at a time, and each round trip
        costs the ingest process more CPU than the rows themselves."""
        columns = [list(c) for c in zip(*((*r, *NO_EXTRAS) if len(r) == 5 else r for r in rows))]
        cur.execute(CHECKED_INSERT, (activity_ids, *columns, list(open_statuses)), prepare=True)
        statuses: dict[int, str] = {}
        stored: set[tuple[int, int]] = set()
        for activity_id, status, seq in cur.fetchall():
            if seq is None:
                statuses[activity_id] = status
            else:
                stored.add((activity_id, seq))
        return statuses, stored

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
    for the foreign key. PostgreSQL: a row lock is given up on after ``lock_timeout_ms``, and
    a transaction left idle for ``IDLE_IN_TRANSACTION_MS`` ends the session.

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
            # A process stopped inside its commit (hung, or frozen by the machine) would hold
            # its row locks against every other ingest process: PostgreSQL ends it instead.
            cur.execute(f"SET idle_in_transaction_session_timeout = {int(IDLE_IN_TRANSACTION_MS)}")
    finally:
        cur.close()
    if engine.dialect.name != "sqlite":
        raw.commit()
    return raw
