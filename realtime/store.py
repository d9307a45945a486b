"""The ingest server's database side.

``commit_batches`` writes the points of many connections in one transaction (the group
commit) and is called from the event loop's thread, on a driver connection of its own.
Everything else (authentication, creates, status changes, feed pages) runs on one worker
thread through ``executor``, so those calls never block the loop.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg.errors
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import DeviceToken
from core.accounts.tokens import device_identity, revoked_among
from core.accounts.users import user_by_id
from core.activities.cues import CuePrefs, save_cue_prefs
from core.activities.ingest import lock_statuses, refusal
from core.activities.lifecycle import (
    OPEN_STATUSES,
    TRANSITIONS,
    change_status,
    create_activity,
    get_owned_activity,
)
from core.activities.shown import hold_hiding
from core.activities.summary import Summary, pause_intervals, summarise_activity
from core.activities.tables import COMMAND_STATUS, ActivityEvent
from core.challenges.award_reads import new_badges, new_completions
from core.challenges.awards import activity_rows
from core.challenges.feed import feed_answer
from core.challenges.personal import describe
from core.storage.engine import checkpoint_wal, make_engine, make_sessionmaker, write_transaction
from core.storage.points import (
    FastInsert,
    count_points,
    fast_insert_connection,
    points_fingerprint,
    positions,
)
from core.storage.schema import migrate

SQLITE_CACHE_KIB = 64 * 1024  # the hot connection's page cache: one index page per open activity
CHECKPOINT_EVERY_S = 1.0  # how often the SQLite WAL is copied into the database, off the event loop
# The group commit runs on the event loop, so it must never wait for a lock there: SQLite
# answers "busy" at once and PostgreSQL gives up on a row lock after this long; the server
# then retries with backoff while the loop goes on (see realtime.commit.GroupCommit.committer).
PG_LOCK_TIMEOUT_MS = 20
# Up to this many rows, a PostgreSQL group commit is one statement (FastInsert.checked);
# more go through COPY, which is cheaper per row.
CHECKED_ROWS = 200


class DatabaseBusy(RuntimeError):
    """Another writer holds the lock the group commit needs; nothing was written: retry."""


def is_busy(exc: BaseException) -> bool:
    """Whether a driver error (or SQLAlchemy's wrapper of one) means only that another
    transaction holds a lock."""
    exc = getattr(exc, "orig", None) or exc
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return "locked" in text or "busy" in text
    return isinstance(exc, (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected,
                            psycopg.errors.SerializationFailure))


@dataclass
class Identity:
    """Who a connection acts for."""

    user_id: int
    username: str
    cue_prefs: CuePrefs
    token_id: int = 0
    sport: str | None = None  # the device token's sport, for phone apps' fixes (None: from speeds)


@dataclass
class ActivityInfo:
    """What the server keeps in memory about an activity it has seen."""

    id: int
    user_id: int
    sport: str
    status: str


def refuse_closed(batches: list[tuple[int, list[tuple]]],
                  statuses: dict[int, str]) -> tuple[list[object], list[tuple]]:
    """Per batch, the error of ``core.activities.ingest.refusal`` for an activity that takes
    no points (missing or no longer open; else None), and the rows of the other batches, to
    insert."""
    results: list[object] = [None] * len(batches)
    rows = []
    for k, (activity_id, batch_rows) in enumerate(batches):
        error = refusal(activity_id, statuses.get(activity_id))
        if error is not None:
            results[k] = error
        else:
            rows.extend(batch_rows)
    return results, rows


def share_out(batches: list[tuple[int, list[tuple]]], results: list[object], stored: set[tuple[int, int]],
              every_row_new: bool) -> list[object]:
    """Fill in, for each batch not refused, the seqs it stored: all of them when every row
    was new (the usual case: no resends); else those in ``stored``, a point sent twice in
    one commit counting for the first batch that sent it."""
    claimed: set[tuple[int, int]] = set()
    for k, (activity_id, batch_rows) in enumerate(batches):
        if results[k] is not None:
            continue
        if every_row_new:
            results[k] = {r[1] for r in batch_rows}
            continue
        mine = set()
        for r in batch_rows:
            key = (activity_id, r[1])
            if key in stored and key not in claimed:
                claimed.add(key)
                mine.add(r[1])
        results[k] = mine
    return results


class Store:
    """Database operations for the ingest server."""

    def __init__(self, database_url: str | None = None):
        self.engine = make_engine(database_url)
        migrate(self.engine)
        self.Session = make_sessionmaker(self.engine)
        self.dialect = self.engine.dialect.name
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db")
        # Suggestions read much more than a device's commands: a thread of their own, so that
        # a queue of them never delays sign-ins, creates or status changes.
        self.slow_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="suggest")
        # Activities loaded (a reconnect storm loads thousands): threads of their own, so that
        # sign-ins and status changes never wait behind them.
        self.load_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="load")
        self._raw_conn = None
        self._insert: FastInsert | None = None  # the point inserts of the raw connection
        self._nowait_engine: Engine | None = None
        self._nowait: sessionmaker[Session] | None = None

    def nowait_sessions(self) -> sessionmaker[Session]:
        """Sessions for a writer on the event loop's thread (the HTTP service's fix commit),
        on a connection of their own that never waits for a lock: SQLite answers "busy" at
        once (and leaves the WAL to ``checkpoint``), PostgreSQL gives up on a row lock after
        ``PG_LOCK_TIMEOUT_MS``. The caller puts the work back and retries after a backoff, as
        the group commit does, so a job's write transaction never stalls the loop."""
        if self._nowait is None:
            engine = make_engine(self.engine.url.render_as_string(hide_password=False), pool_size=1,
                                 max_overflow=0)

            @event.listens_for(engine, "connect")
            def _no_wait(dbapi_conn, _record) -> None:
                cur = dbapi_conn.cursor()
                if engine.dialect.name == "sqlite":
                    cur.execute("PRAGMA busy_timeout=0")
                    cur.execute("PRAGMA wal_autocheckpoint=0")
                else:
                    cur.execute(f"SET lock_timeout = {PG_LOCK_TIMEOUT_MS}")
                    dbapi_conn.commit()
                cur.close()

            self._nowait_engine, self._nowait = engine, make_sessionmaker(engine)
        return self._nowait

    def close(self) -> None:
        if self._nowait_engine is not None:
            self._nowait_engine.dispose()
        self._close_raw()
        self.slow_executor.shutdown(wait=True, cancel_futures=True)
        self.load_executor.shutdown(wait=True, cancel_futures=True)
        self.executor.shutdown(wait=True)
        self.engine.dispose()

    def _close_raw(self) -> None:
        if self._raw_conn is not None:
            # Never back into the pool: SQLite's has its foreign keys off and no busy wait,
            # PostgreSQL's a 20 ms lock timeout, neither of which the other callers expect.
            self._raw_conn.invalidate()
            self._raw_conn = None
            self._insert = None

    def authenticate(self, token: str) -> Identity | None:
        with self.Session() as s, s.begin():
            found = device_identity(s, token)
            if found is None:
                return None
            user, token_id = found
            sport = getattr(s.get(DeviceToken, token_id), "sport", None)
            return Identity(user.id, user.username, CuePrefs.from_settings(user.settings), token_id, sport)

    def revoked_tokens(self, token_ids: list[int]) -> set[int]:
        """Those of ``token_ids`` that are revoked or gone (their user deleted)."""
        with self.Session() as s:
            return revoked_among(s, token_ids)

    def create(self, user_id: int, sport: str, title: str | None, visibility: str | None,
               client_ref: str | None) -> ActivityInfo:
        with self.Session() as s, s.begin():
            user = user_by_id(s, user_id)
            a = create_activity(s, user, sport, title=title, visibility=visibility, client_ref=client_ref)
            return ActivityInfo(a.id, a.user_id, a.sport, a.status)

    def activity(self, activity_id: int, user_id: int) -> tuple[ActivityInfo, list[tuple], list[tuple], tuple]:
        """The activity (NotFound unless the user's own), its stored points as (t, lat, lon,
        ele) in time order, its pause intervals (what its live stats are replayed from), and
        its ``version``."""
        with self.Session() as s:
            a = get_owned_activity(s, activity_id, user_id)
            points = positions(s, a.id, ele=True)
            events = s.scalar(select(func.count()).select_from(ActivityEvent)
                              .where(ActivityEvent.activity_id == a.id))
            return (ActivityInfo(a.id, a.user_id, a.sport, a.status), points, pause_intervals(s, a),
                    (len(points), events))

    def version(self, activity_id: int) -> tuple[int, int]:
        """How many points and status events the activity has stored: two counts over indexes
        that tell whether the state an ingest process holds of it is still current."""
        with self.Session() as s:
            return self._counts(s, activity_id)

    @staticmethod
    def _counts(s: Session, activity_id: int) -> tuple[int, int]:
        return (count_points(s, activity_id),
                s.scalar(select(func.count()).select_from(ActivityEvent).where(ActivityEvent.activity_id == activity_id)))

    @staticmethod
    def _fingerprint(s: Session, activity_id: int) -> tuple:
        """What a summary is worked out from, in a few numbers: the points' count, highest
        and summed sequence numbers, and the status events' count and highest id."""
        events = s.execute(select(func.count(), func.max(ActivityEvent.id))
                           .where(ActivityEvent.activity_id == activity_id)).one()
        return (*points_fingerprint(s, activity_id), *events)

    def _plan_completion(self, activity_id: int, user_id: int) -> tuple[tuple, Summary] | None:
        """The ``_fingerprint`` and the summary a completion would store, read with no write
        transaction open; None when the activity cannot be completed now (the write then
        answers why)."""
        with self.Session() as s:
            a = get_owned_activity(s, activity_id, user_id)
            if a.status == COMMAND_STATUS["complete"] or TRANSITIONS["complete"].get(a.status) is None:
                return None
            fingerprint = self._fingerprint(s, activity_id)
            return fingerprint, summarise_activity(s, a)

    def change_status(self, activity_id: int, user_id: int, command: str, at: float | None) -> ActivityInfo:
        # A completion's summary is worked out first, with no write transaction open; the
        # write takes it only if its points and status events are as they were. On SQLite the
        # transaction takes the write lock before it reads (BEGIN IMMEDIATE): one that had
        # read the row before another writer's commit could not write after it.
        plan = command == "complete" and (at is None or math.isfinite(at))  # else the write refuses it
        planned = self._plan_completion(activity_id, user_id) if plan else None
        with write_transaction(self.Session, "ingest_status") as s:
            if command == "complete":
                hold_hiding(s, [user_id])  # before the row: ``core.social.privacy.hold_hiding``
            a = get_owned_activity(s, activity_id, user_id, lock=self.dialect == "postgresql")
            summary = None
            if planned is not None and planned[0] == self._fingerprint(s, activity_id):
                summary = planned[1]
            change_status(s, a, command, at=at, summary=summary)
            return ActivityInfo(a.id, a.user_id, a.sport, a.status)

    def commit_batches(self, batches: list[tuple[int, list[tuple]]]) -> list[object]:
        """Insert many batches in one transaction; per batch, the seqs newly stored or an error.

        This is the ingest hot path, so it speaks to the driver directly: one locked status
        check (``core.activities.ingest.lock_statuses``), one multi-row insert that skips
        (activity, seq) pairs already stored (``core.storage.points.FastInsert``), one
        commit. A batch for an activity that takes no points gets the error of
        ``core.activities.ingest.refusal``. When another writer holds the lock, nothing is
        written and DatabaseBusy is raised at once.
        """
        raw = self._raw()
        if self.dialect == "postgresql" and sum(len(r) for _, r in batches) <= CHECKED_ROWS:
            return self._commit_checked(raw, batches)
        cur = raw.cursor()
        try:
            statuses = lock_statuses(cur, self.dialect, sorted({activity_id for activity_id, _ in batches}))
            results, rows = refuse_closed(batches, statuses)
            stored = self._insert(cur, rows) if rows else set()
            raw.commit()
        except BaseException as exc:
            self._abandon_commit(raw, exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                cur.close()
        return share_out(batches, results, stored, every_row_new=len(stored) == len(rows))

    def _commit_checked(self, raw, batches: list[tuple[int, list[tuple]]]) -> list[object]:
        """``commit_batches`` on PostgreSQL for the live load's few rows: the status check, the
        insert and the commit in one statement (``FastInsert.checked``)."""
        driver = raw.driver_connection
        driver.autocommit = True
        cur = raw.cursor()
        try:
            rows = [row for _, batch_rows in batches for row in batch_rows]
            statuses, stored = self._insert.checked(cur, rows, sorted({a for a, _ in batches}), OPEN_STATUSES)
        except BaseException as exc:
            self._abandon_commit(raw, exc)
            raise
        finally:
            with contextlib.suppress(Exception):
                cur.close()
            with contextlib.suppress(Exception):
                driver.autocommit = False
        results, accepted = refuse_closed(batches, statuses)
        return share_out(batches, results, stored, every_row_new=len(stored) == len(accepted))

    def _abandon_commit(self, raw, exc: BaseException) -> None:
        """Roll back a failed group commit. DatabaseBusy (raised from ``exc``) when another
        writer held the lock; after a real fault the connection is dropped, so the next
        commit starts on a fresh one. The caller raises ``exc`` itself otherwise."""
        try:
            raw.rollback()
        except Exception:  # noqa: BLE001 - a broken connection is replaced below
            self._close_raw()
            raise exc from None
        if is_busy(exc):
            raise DatabaseBusy(str(exc)) from exc
        if isinstance(exc, Exception):
            self._close_raw()

    def _raw(self):
        # The committing thread keeps one driver connection for the hot path: it never waits
        # for a lock (see DatabaseBusy), and on SQLite its commits leave the WAL to
        # ``checkpoint`` and keep every open activity's index page in memory.
        if self._raw_conn is None:
            self._raw_conn = fast_insert_connection(self.engine, PG_LOCK_TIMEOUT_MS, SQLITE_CACHE_KIB)
            self._insert = FastInsert(self._raw_conn.driver_connection, self.dialect)
        return self._raw_conn

    def checkpoint(self) -> tuple[int, int]:
        """SQLite only: copy committed WAL pages into the database (PASSIVE: never waits on readers
        or writers). Run on the database thread every ``CHECKPOINT_EVERY_S``; the driver
        releases the GIL while it writes, so ingest goes on meanwhile. Returns the frames in
        the WAL and how many of them are now in the database."""
        return checkpoint_wal(self.engine)

    def feed(self, user_id: int, cursor: str | None, limit: int) -> dict:
        with self.Session() as s:
            return feed_answer(s, user_id, cursor, limit)

    def badge_cues(self, user_id: int, activity_id: int) -> list[dict]:
        """The challenges a just-completed activity completes and the badges it earns, if it
        stands, as cues to speak."""
        with self.Session() as s:
            units = (user_by_id(s, user_id).settings or {}).get("units", "metric")
            rows = activity_rows(s, user_id)  # the athlete's history, read once for both
            done = [{"challenge": c.id, "text": f"Challenge completed: {describe(c.kind, c.sport, c.target, units)}."}
                    for c in new_completions(s, user_id, activity_id, rows)]
            return done + [{"badge": b.code, "text": f"New badge: {b.name}. {b.description}"}
                           for b in new_badges(s, user_id, activity_id, rows)]

    def recommendations(self, user_id: int, kind: str, limit: int) -> list[dict]:
        """Suggested routes (with their trimmed polyline) or athletes, best first."""
        from core.recommend.athletes import suggest_athletes
        from core.recommend.service import suggestions_for

        with self.Session() as s:
            if kind == "athletes":
                return [{"username": a.user.username, "name": a.user.name, "reason": a.reason}
                        for a in suggest_athletes(s, user_id, limit)]
            return [{"route_id": r.id, "name": r.name, "distance_m": r.distance_m or r.path_m,
                     "elevation_gain_m": r.elevation_gain_m, "kind": r.kind, "polyline": r.polyline,
                     "reason": sug.reason} for r, sug in suggestions_for(s, user_id, limit)]

    def save_cues(self, user_id: int, prefs: CuePrefs) -> None:
        with self.Session() as s, s.begin():
            save_cue_prefs(s, user_by_id(s, user_id), prefs)
