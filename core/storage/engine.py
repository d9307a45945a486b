"""Engine and session factory for SQLite (the embedded default) or PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL``: a transaction that has committed is in
the write-ahead log on disk, so it survives a crash of the process (and of the machine).
Foreign keys are enforced and writers wait for each other instead of failing at once.

A new SQLite database gets 1 KiB pages instead of SQLite's 4 KiB. The ingest server's
commits hold one point each for hundreds of activities, and every one of them dirties its
activity's own index page, which the WAL writes whole: smaller pages write a quarter of the
bytes. Measured with bench/ingest_live.py's load on two servers alternating: 16% more
messages per second; reading a 15,000-point track took the same time. An existing database
keeps the page size it was made with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.config import load_settings

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_PAGE_BYTES = 1024  # for new databases only; see the module docstring
# The longest a background job (the worker, a dashboard action) should keep a write
# transaction open. SQLite has one writer: the ingest server's group commit waits for it.
WRITE_LOCK_BUDGET_MS = 50.0

log = logging.getLogger(__name__)


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Create an engine for ``url`` (default: TRACKER_DATABASE_URL or the SQLite file)."""
    url = url or load_settings().database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg2", "", None):
        url = parsed.set(drivername="postgresql+psycopg")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")  # a no-op once the file has its first table
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.close()


def checkpoint_wal(engine: Engine) -> tuple[int, int]:
    """SQLite only: copy committed WAL pages into the database, PASSIVE (never waiting on
    readers or writers). Returns the frames in the WAL and how many of them are now in the
    database."""
    with engine.connect() as conn:
        _busy, frames, copied = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        return frames, copied


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


class WriteLocks:
    """How long each job has held write transactions (count, median, 99th percentile and
    longest, in ms), and the longest it waited to get one."""

    SAMPLES = 10_000  # per job between resets; enough for the worker's rounds

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, dict] = {}
        self.observers: list = []  # called with (job, ms, wait_ms) for each transaction (metrics)

    def record(self, job: str, ms: float, wait_ms: float = 0.0) -> None:
        for observe in list(self.observers):
            observe(job, ms, wait_ms)
        with self._lock:
            row = self.jobs.setdefault(job, {"count": 0, "samples": [], "max_ms": 0.0, "max_wait_ms": 0.0})
            row["count"] += 1
            row["max_ms"] = max(row["max_ms"], ms)
            row["max_wait_ms"] = max(row["max_wait_ms"], wait_ms)
            if len(row["samples"]) < self.SAMPLES:
                row["samples"].append(ms)

    def snapshot(self, reset: bool = False) -> dict[str, dict]:
        """Each job's figures (rounded), optionally starting afresh."""
        with self._lock:
            out = {}
            for job, r in self.jobs.items():
                ordered = sorted(r["samples"])
                out[job] = {"count": r["count"], "p50_ms": round(ordered[len(ordered) // 2], 2),
                            "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
                            "max_ms": round(r["max_ms"], 2), "max_wait_ms": round(r["max_wait_ms"], 2)}
            if reset:
                self.jobs = {}
            return out


WRITE_LOCKS = WriteLocks()


@contextmanager
def write_transaction(Session: sessionmaker[Session], job: str) -> Iterator[Session]:
    """A short write transaction for a background job, timed into ``WRITE_LOCKS``.

    Compute first, then open this to write the result. On SQLite the transaction takes the
    write lock at once (BEGIN IMMEDIATE, waiting for the ingest server's commit if need be),
    so what is recorded is exactly how long the lock was held, from BEGIN to the end of
    COMMIT, and apart from it how long the job waited for it. On PostgreSQL it is the
    transaction's length, which bounds the row locks the job holds. Do not nest two on one
    thread: on SQLite the inner one would wait for the outer one's lock."""
    began = time.perf_counter()
    held = None
    try:
        with Session() as s, s.begin():
            if s.get_bind().dialect.name == "sqlite":
                s.connection().exec_driver_sql("BEGIN IMMEDIATE")
            held = time.perf_counter()
            yield s
    finally:
        if held is not None:
            ms = (time.perf_counter() - held) * 1000
            WRITE_LOCKS.record(job, ms, (held - began) * 1000)
            if ms > WRITE_LOCK_BUDGET_MS:
                log.warning("%s held a write transaction for %.0f ms (budget %.0f ms)", job, ms, WRITE_LOCK_BUDGET_MS)
