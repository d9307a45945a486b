"""Which worker process runs each scheduled job: one at a time, whatever the number started.

A worker takes a job's lock the first time the job is due and keeps it while it lives; the
others skip that job, and try for the lock again each time it is due, so when the holder
dies another takes the job over at its next turn. Nothing home-made decides:

- **PostgreSQL**: a session advisory lock (``pg_try_advisory_lock``) per job, on a
  connection of its own kept for the purpose. The server releases it when that connection
  ends, a killed worker's included.
- **SQLite**: an exclusive ``flock`` on a file per job beside the database
  (``.<database file>.<job>.lock``), which the operating system releases when the process
  ends. Workers on one SQLite database share its machine.

A database without a file (SQLite in memory) has one process: every job is its own.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

NAMESPACE = "tracker.job:"


def advisory_key(job: str) -> int:
    """The job's advisory lock key: a signed 64-bit number from its name, the same in every
    process and release (Python's ``hash`` of a string is not)."""
    digest = hashlib.blake2b((NAMESPACE + job).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class JobLocks:
    """The job locks one worker process holds (``mine``), released by ``close`` or its end."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self.held: set[str] = set()
        self._conn = None  # PostgreSQL: the connection the advisory locks live on
        self._files: dict[str, int] = {}  # SQLite: job -> descriptor of its locked file
        database = engine.url.database if self.dialect == "sqlite" else None
        self._folder = None
        if database and database != ":memory:" and not database.startswith("file::memory:"):
            path = Path(database).resolve()
            self._folder, self._stem = path.parent, path.name

    def mine(self, job: str) -> bool:
        """Whether this process runs ``job``: True if it holds the job's lock or takes it now."""
        if job in self.held:
            if self.dialect == "postgresql" and not self._alive():
                self.held.clear()  # the connection went, and the locks with it: try again
            else:
                return True
        if self.dialect == "postgresql":
            took = self._take_advisory(job)
        elif self.dialect == "sqlite":
            took = self._take_file(job)
        else:
            took = True
        if took:
            self.held.add(job)
            log.info("this worker runs %s", job)
        return took

    # PostgreSQL ----------------------------------------------------------------------------

    def _alive(self) -> bool:
        try:
            self._conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - any failure means the session, and its locks, are gone
            self._drop_connection()
            return False

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._conn = None

    def _take_advisory(self, job: str) -> bool:
        try:
            if self._conn is None:
                self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            return bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": advisory_key(job)}).scalar())
        except Exception:  # noqa: BLE001 - the database is unreachable: nobody runs it from here now
            log.warning("could not ask for the lock of %s", job, exc_info=True)
            self._drop_connection()
            self.held.clear()
            return False

    # SQLite --------------------------------------------------------------------------------

    def lock_path(self, job: str) -> Path | None:
        return None if self._folder is None else self._folder / f".{self._stem}.{job}.lock"

    def _take_file(self, job: str) -> bool:
        import fcntl

        path = self.lock_path(job)
        if path is None:
            return True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:  # a read-only folder, a path taken, no descriptors left: not run here now
            log.warning("cannot open the lock file of %s (%s): another worker may run it", job, exc)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._files[job] = fd  # held from here, whatever writing the holder's pid does
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass  # the pid is only for people looking
        return True

    # ---------------------------------------------------------------------------------------

    def close(self) -> None:
        """Give up every lock (a worker that stops)."""
        for fd in self._files.values():
            os.close(fd)  # closing the only descriptor releases the flock
        self._files.clear()
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT pg_advisory_unlock_all()")
            except Exception:  # noqa: BLE001 - closing the connection releases them anyway
                pass
            self._conn.close()
            self._conn = None
        self.held.clear()
