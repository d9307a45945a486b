"""PostgreSQL: the points table's partitions, by ranges of activity id.

Activity ids grow as activities are created, so each partition holds the points of the
activities created in one stretch of time, every activity whole in one partition. (Ranges of
the points' own time would split an activity across partitions, put the time into the key
that lets every insert skip resent points (activity, seq), and trust device clocks.)

Tiers on PostgreSQL: the open partitions, into which new activities' points go, are hot;
the closed ones (every activity in them created over ``CLOSED_AFTER`` ago) are warm, read as
the hot ones are; once every activity of a closed partition is archived
(``core.storage.tiers``), the partition is emptied whole (TRUNCATE): its points go at once,
with no row deleted, nothing left to vacuum, and its storage given back. (Detaching and
dropping it would do the same but take an exclusive lock on ``activities``, which its foreign
key refers to, stopping every reader of activities meanwhile; TRUNCATE holds the partition
alone.) Points brought back from the archive go back into their partition; points of
activities beyond the partitions made ahead land in the default partition
(``route_points_default``) until the worker makes theirs.

``ranges``           the partitions (name, first id, end id), lowest first
``ensure_ahead``     partitions for the next ids, made ahead (the worker, hourly); rows that
                     landed in the default partition for a new range move into it
``frontier``         the lowest id a new activity may still take: partitions ending at or
                     below it are closed
``holds_rows``       whether a partition holds any row
``empty``            empty a closed partition whose activities are all archived
``table_bytes``      the points table's bytes with its indexes, all partitions

On SQLite the points are one table: ``partitioned`` is False, and nothing here applies.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from core.activities.tables import Activity
from core.storage.base import utcnow

log = logging.getLogger(__name__)

TABLE = "route_points"
DEFAULT = "route_points_default"
AHEAD = 2  # partitions made beyond the newest activity's
CLOSED_AFTER = timedelta(hours=1)  # no transaction creating an activity stays open this long
EMPTY_LOCK_TIMEOUT_MS = 500  # below PostgreSQL's deadlock_timeout: emptying gives way, not a writer
MAKE_LOCK_TIMEOUT_MS = 500

_BOUNDS = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True)
class Range:
    name: str
    lo: int  # first activity id
    hi: int  # first activity id beyond


def partitioned(s: Session) -> bool:
    """Whether the points table is partitioned (PostgreSQL)."""
    if s.get_bind().dialect.name != "postgresql":
        return False
    kind = s.connection().exec_driver_sql(
        "SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass('route_points')").scalar()
    return kind == "p"


def ranges(s: Session) -> list[Range]:
    """The partitions with a range (not the default one), lowest first."""
    rows = s.connection().exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'route_points'::regclass").all()
    out = []
    for name, bound in rows:
        m = _BOUNDS.search(bound or "")
        if m:
            out.append(Range(name, int(m.group(1)), int(m.group(2))))
    return sorted(out, key=lambda r: r.lo)


def ensure_ahead(Session: sessionmaker[Session], size: int) -> list[str]:
    """Make partitions of ``size`` ids from the highest one up to ``AHEAD`` partitions past the
    newest activity; the names made. A range some rows already took in the default partition
    gets them moved into its own partition in the same transaction."""
    with Session() as s:
        if not partitioned(s):
            return []
        top = int(s.scalar(select(func.coalesce(func.max(Activity.id), 0))))
        hi = max((r.hi for r in ranges(s)), default=0)
    made = []
    while hi < top + AHEAD * size:
        lo, hi = hi, hi + size
        name = f"{TABLE}_a{lo}"
        try:
            with Session() as s, s.begin():
                _make(s.connection(), name, lo, hi)
        except OperationalError:
            log.warning("partition %s not made now (the table was busy): the next run makes it", name)
            break
        made.append(name)
    return made


def _make(conn, name: str, lo: int, hi: int) -> None:
    """Make the partition as a table of its own, then attach it: attaching holds the points
    table only against other schema changes (reads and writes of it go on), where creating
    it as a partition would hold it against everything. Adding the foreign key holds
    ``activities`` against writes for a moment; each lock is given up on after
    ``MAKE_LOCK_TIMEOUT_MS``."""
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = {MAKE_LOCK_TIMEOUT_MS}")
    conn.exec_driver_sql(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    # The range as a constraint, so that attaching need not scan the table to check it.
    conn.exec_driver_sql(f"ALTER TABLE {name} ADD CONSTRAINT {name}_range "
                         f"CHECK (activity_id IS NOT NULL AND activity_id >= {lo} AND activity_id < {hi})")
    # Rows that landed in the default partition move in this transaction, which holds the
    # default partition against writes (attaching scans it, holding it anyway).
    conn.exec_driver_sql(f"LOCK TABLE {DEFAULT} IN EXCLUSIVE MODE")
    stray = f"FROM {DEFAULT} WHERE activity_id >= {lo} AND activity_id < {hi}"
    if conn.exec_driver_sql(f"SELECT EXISTS (SELECT 1 {stray})").scalar():
        conn.exec_driver_sql(f"INSERT INTO {name} SELECT * {stray}")
        conn.exec_driver_sql(f"DELETE {stray}")
    conn.exec_driver_sql(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({lo}) TO ({hi})")
    conn.exec_driver_sql(f"ALTER TABLE {name} DROP CONSTRAINT {name}_range")


def frontier(s: Session) -> int:
    """The lowest id a new activity may still take: that of the oldest activity created
    within ``CLOSED_AFTER``, else one past the newest."""
    recent = s.scalar(select(func.min(Activity.id)).where(Activity.created_at > utcnow() - CLOSED_AFTER))
    if recent is not None:
        return int(recent)
    return int(s.scalar(select(func.coalesce(func.max(Activity.id), 0)))) + 1


def holds_rows(s: Session, part: Range) -> bool:
    """Whether the partition holds any row."""
    return bool(s.connection().exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {part.name})").scalar())


def empty(Session: sessionmaker[Session], part: Range) -> bool:
    """Empty ``part`` (TRUNCATE) if every activity in its range is archived; whether it was.
    It holds that partition alone for a moment (reads and writes of the other partitions go
    on): when a reader or writer of it is in the way for ``EMPTY_LOCK_TIMEOUT_MS`` it gives
    up (False), and the next run tries again."""
    try:
        with Session() as s, s.begin():
            conn = s.connection()
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = {EMPTY_LOCK_TIMEOUT_MS}")
            # With the partition held, no point is inserted into it and no transaction that
            # brings one of its activities back can check its rows before this commits
            # (core.storage.tiers).
            conn.exec_driver_sql(f"LOCK TABLE {part.name} IN ACCESS EXCLUSIVE MODE")
            if part not in ranges(s) or part.hi > frontier(s):
                return False
            hot = s.scalar(select(func.count()).select_from(Activity).where(
                Activity.id >= part.lo, Activity.id < part.hi, Activity.points_tier != "cold"))
            if hot:
                return False
            conn.exec_driver_sql(f"TRUNCATE {part.name}")
    except OperationalError:
        log.info("partition %s not emptied now (it was busy): the next run tries again", part.name)
        return False
    return True


def table_bytes(s: Session) -> int | None:
    """Bytes of the points table with its indexes, every partition's (PostgreSQL; None on
    SQLite, whose file holds every table)."""
    if s.get_bind().dialect.name != "postgresql":
        return None
    if partitioned(s):
        return int(s.connection().exec_driver_sql(
            "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
            "WHERE inhparent = 'route_points'::regclass").scalar())
    return int(s.connection().exec_driver_sql("SELECT pg_total_relation_size('route_points')").scalar())


__all__ = ["Range", "empty", "ensure_ahead", "frontier", "holds_rows", "partitioned", "ranges", "table_bytes"]
