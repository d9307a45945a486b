"""The activity lifecycle and point ingest.

Create (run or ride) -> start -> pause <-> resume -> stop -> complete, or discard from any
open state; a stopped activity may still be resumed. A command that asks for the state the
activity is already in is a no-op that returns it. Point batches are idempotent on
(activity, seq), may arrive in any order, and are kept even while paused (those points
then count for neither distance nor moving time). Completion recomputes the summary from
the stored track.

A file (an upload) is stored by ``import_track`` in short write transactions, since SQLite
has one writer and the ingest server commits every few milliseconds: summary first, then the
activity, unseen ("created", private) while a few thousand points at a time are written, then
completed in one step. ``record_track`` does the same in the caller's one transaction, for
bulk loads that run alone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import repeat

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from core.cleaning import clean_track
from core.db import write_transaction
from core.models import SPORTS, VISIBILITIES, Activity, ActivityEvent, RoutePoint, User
from core.points import Track
from core.text import CLIENT_REF_MAX_CHARS, TITLE_MAX_CHARS, TextRefused, check_identifier, fit
from core.trackstats import Summary, summarise

OPEN_STATUSES = ("created", "active", "paused", "stopped")
# command -> {current status: new status}
TRANSITIONS = {
    "start": {"created": "active"},
    "pause": {"active": "paused"},
    "resume": {"paused": "active", "stopped": "active"},
    "stop": {"active": "stopped", "paused": "stopped"},
    "complete": {"stopped": "completed"},
    "discard": {s: "discarded" for s in OPEN_STATUSES},
}
# The status each command leads to, so a repeated command is recognised as a no-op.
TARGET = {"start": "active", "pause": "paused", "resume": "active", "stop": "stopped",
          "complete": "completed", "discard": "discarded"}
POINT_FIELDS = ("lat", "lon", "ele", "acc", "hr", "cad")
POINT_COLUMNS = ("activity_id", "seq", "t", *POINT_FIELDS)
# Where an activity made from a file comes from; one of these still "created" is an import
# being written, or one whose process died midway.
IMPORT_SOURCES = ("upload", "import")
# Points per write transaction of an import, against a 50 ms budget: importing the largest
# real recording (24,239 points) on a busy two-core machine held SQLite's write lock a median
# 11 ms per chunk, and took 25 ms per transaction on PostgreSQL.
IMPORT_CHUNK_POINTS = 2000
IMPORT_REST_S = 0.005  # added to each import transaction's rest on SQLite; see _import_transaction

log = logging.getLogger("core.activities")


class ActivityError(ValueError):
    """A request about an activity that cannot be honoured; ``code`` is machine-readable."""

    code = "activity_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class InvalidTransition(ActivityError):
    code = "invalid_transition"


class ActivityClosed(ActivityError):
    code = "activity_closed"


class NotFound(ActivityError):
    code = "not_found"


@dataclass
class IngestResult:
    """What a batch did: points newly stored and points already there."""

    stored: int
    duplicates: int


def create_activity(s: Session, user: User, sport: str, title: str | None = None,
                    visibility: str | None = None, source: str = "device",
                    client_ref: str | None = None) -> Activity:
    """Create a new activity (not yet started) for ``user``.

    With ``client_ref`` (the device's own id for it) a repeated create returns the
    activity made the first time, so a device may retry after a lost answer. A title
    longer than the column is cut with an ellipsis; a ``client_ref`` too long is refused.
    """
    if client_ref is not None:
        try:
            check_identifier(client_ref, CLIENT_REF_MAX_CHARS, "client_ref")
        except TextRefused as exc:
            raise ActivityError(str(exc), "invalid_value") from None
        existing = s.scalars(select(Activity).where(Activity.user_id == user.id,
                                                    Activity.client_ref == client_ref)).first()
        if existing is not None:
            return existing
    if sport not in SPORTS:
        raise ActivityError(f"sport must be one of {', '.join(SPORTS)}, not {sport!r}", "invalid_sport")
    visibility = check_visibility(visibility or user.default_visibility)
    activity = Activity(user_id=user.id, sport=sport, status="created", source=source,
                        title=fit(title, TITLE_MAX_CHARS) or _default_title(sport), visibility=visibility,
                        client_ref=client_ref)
    s.add(activity)
    s.flush()
    return activity


def _default_title(sport: str) -> str:
    return "Run" if sport == "run" else "Ride"


def get_owned_activity(s: Session, activity_id: int, user_id: int, lock: bool = False) -> Activity:
    """The activity if it exists and belongs to ``user_id``; NotFound otherwise."""
    query = select(Activity).where(Activity.id == activity_id)
    if lock:
        query = query.with_for_update(of=Activity)
    activity = s.scalars(query).first()
    if activity is None or activity.user_id != user_id:
        # The same answer for "absent" and "someone else's", so ids cannot be probed.
        raise NotFound(f"no activity {activity_id} for this user")
    return activity


def edit_activity(s: Session, activity: Activity, title: str | None = None,
                  visibility: str | None = None) -> Activity:
    """Change an activity's title (cut to fit with an ellipsis) or who may see it (the
    caller checked ownership)."""
    if title is not None:
        title = fit(title, TITLE_MAX_CHARS)
        if not title:
            raise ActivityError("a title cannot be empty", "invalid_value")
        activity.title = title
    if visibility is not None:
        activity.visibility = check_visibility(visibility)
    s.flush()
    return activity


def delete_activity(s: Session, activity: Activity) -> None:
    """Delete an activity; its points, events, comments and kudos go with it through the foreign
    keys' ON DELETE CASCADE (the caller checked ownership)."""
    s.delete(activity)
    s.flush()


def change_status(s: Session, activity: Activity, command: str, at: float | None = None) -> Activity:
    """Apply a lifecycle command; a repeated command is a no-op."""
    if command not in TRANSITIONS:
        raise InvalidTransition(f"unknown command {command!r}; expected one of {', '.join(TRANSITIONS)}",
                                "unknown_command")
    if activity.status == TARGET[command]:
        return activity
    new_status = TRANSITIONS[command].get(activity.status)
    if new_status is None:
        raise InvalidTransition(f"cannot {command} an activity that is {activity.status}")
    at = time.time() if at is None else float(at)
    if not math.isfinite(at):
        raise ActivityError("event time must be a finite number of seconds", "invalid_time")
    if command == "complete":
        complete_activity(s, activity, at)
    activity.status = new_status
    if command == "start" and activity.start_time is None:
        activity.start_time = datetime.fromtimestamp(at, tz=UTC)
    s.add(ActivityEvent(activity_id=activity.id, command=command, status=new_status, at=at))
    s.flush()
    return activity


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


def insert_points(s: Session, rows: list[dict]) -> int:
    """Insert point rows, skipping (activity_id, seq) pairs already stored; return how many."""
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (insert(RoutePoint).on_conflict_do_nothing(index_elements=["activity_id", "seq"])
            .returning(RoutePoint.seq))
    # RETURNING names the rows really inserted; executemany's rowcount is not reliable.
    return len(s.execute(stmt, rows).all())


def stored_track(s: Session, activity: Activity) -> Track:
    """The stored points of an activity in time order, as a Track."""
    rows = s.execute(
        select(RoutePoint.t, RoutePoint.lat, RoutePoint.lon, RoutePoint.ele, RoutePoint.acc,
               RoutePoint.hr, RoutePoint.cad)
        .where(RoutePoint.activity_id == activity.id)
        .order_by(RoutePoint.t, RoutePoint.seq)
    ).all()
    data = np.array(rows, dtype=np.float64) if rows else np.empty((0, 7))
    cols = [np.ascontiguousarray(data[:, i]) for i in range(7)]
    return Track(*cols, sport=activity.sport, name=activity.title)


def pause_intervals(s: Session, activity: Activity) -> list[tuple[float, float]]:
    """Time ranges during which the activity was paused or stopped."""
    events = s.execute(select(ActivityEvent.command, ActivityEvent.at)
                       .where(ActivityEvent.activity_id == activity.id)
                       .order_by(ActivityEvent.at, ActivityEvent.id)).all()
    intervals = []
    paused_at = None
    for command, at in events:
        if command in ("pause", "stop") and paused_at is None:
            paused_at = at
        elif command == "resume" and paused_at is not None:
            intervals.append((paused_at, at))
            paused_at = None
    if paused_at is not None:
        intervals.append((paused_at, math.inf))
    return intervals


def recorded_track(s: Session, activity: Activity) -> tuple[Track, list[tuple[float, float]], int]:
    """The stored points recorded while the activity ran (those logged while paused taken
    out), the pause intervals, and how many points were stored in all."""
    track = stored_track(s, activity)
    paused = np.zeros(len(track), dtype=bool)
    intervals = pause_intervals(s, activity)
    for start, end in intervals:
        paused |= (track.t > start) & (track.t < end)
    return track.take(~paused), intervals, len(track)


def summarise_activity(s: Session, activity: Activity) -> Summary:
    """Compute the summary of an activity from its stored points and pauses."""
    track, intervals, count = recorded_track(s, activity)
    summary = summarise(clean_track(track), points=count, pauses=intervals)
    if count > len(track):
        summary.dropped["paused"] = count - len(track)
    return summary


def apply_summary(activity: Activity, summary: Summary) -> None:
    """Copy a summary onto the activity's columns."""
    activity.distance_m = summary.distance_m
    activity.moving_time_s = summary.moving_time_s
    activity.elapsed_time_s = summary.elapsed_time_s
    activity.avg_pace_s_per_km = summary.avg_pace_s_per_km
    activity.avg_speed_mps = summary.avg_speed_mps
    activity.max_speed_mps = summary.max_speed_mps
    activity.best_1km_s = summary.best_pace_1km_s_per_km
    activity.elevation_gain_m = summary.elevation_gain_m
    activity.elevation_loss_m = summary.elevation_loss_m
    activity.point_count = summary.points
    activity.summary = summary.to_dict()
    if summary.start_time is not None:
        activity.start_time = datetime.fromtimestamp(summary.start_time, tz=UTC)


def complete_activity(s: Session, activity: Activity, at: float | None = None) -> Summary:
    """Compute the authoritative summary from the stored track and mark completion time."""
    s.flush()
    summary = summarise_activity(s, activity)
    apply_summary(activity, summary)
    activity.completed_at = datetime.fromtimestamp(at if at is not None else time.time(), tz=UTC)
    return summary


def count_points(s: Session, activity_id: int) -> int:
    """How many points are stored for an activity."""
    return int(s.scalar(select(func.count()).select_from(RoutePoint)
                        .where(RoutePoint.activity_id == activity_id)) or 0)


def check_visibility(visibility: str) -> str:
    """``visibility`` if it is one of VISIBILITIES; ActivityError otherwise."""
    if visibility not in VISIBILITIES:
        raise ActivityError(f"visibility must be one of {', '.join(VISIBILITIES)}", "invalid_visibility")
    return visibility


def is_unfinished_import(status: str, source: str) -> bool:
    """An activity made from a file that is still being written, or whose import died midway."""
    return status == "created" and source in IMPORT_SOURCES


def refuse_duplicate(s: Session, user_id: int, source_hash: str) -> None:
    """ActivityError ("duplicate") if the user has an activity made from the file with this
    hash; an unfinished import of it does not count."""
    for activity in s.scalars(select(Activity).where(Activity.user_id == user_id,
                                                     Activity.source_hash == source_hash)):
        if not is_unfinished_import(activity.status, activity.source):
            raise ActivityError(f"this file is already imported as activity {activity.id}", "duplicate")


def track_sport(track: Track, sport: str | None) -> str:
    """The sport to record a file's track as: the one chosen, else the file's if it is a run or a ride."""
    sport = sport or (track.sport if track.sport in SPORTS else None)
    if sport is None:
        raise ActivityError("this file's sport is not a run or a ride; choose one", "invalid_sport")
    return sport


def track_point_rows(activity_id: int, track: Track, positions: np.ndarray, first_seq: int) -> list[tuple]:
    """Rows (tuples in POINT_COLUMNS order) for the track's points at ``positions`` (indices
    of points with a finite time), numbered from ``first_seq``; a missing value becomes NULL."""
    columns = [track.t[positions].tolist()]
    for name in POINT_FIELDS:
        values = getattr(track, name)[positions]
        columns.append(np.where(np.isfinite(values), values, None).tolist())
    seqs = range(first_seq, first_seq + len(positions))
    return list(zip(repeat(activity_id), seqs, *columns))


def _finish_from_file(activity: Activity, summary: Summary, cut_chars: dict | None) -> None:
    apply_summary(activity, summary)
    if cut_chars:
        # Kept with the figures so that the upload can tell the athlete their file's name was cut.
        activity.summary = {**activity.summary, "cut_chars": dict(cut_chars)}
    activity.status = "completed"
    activity.completed_at = datetime.fromtimestamp(summary.end_time or time.time(), tz=UTC)


def record_track(s: Session, user: User, track: Track, sport: str | None = None,
                 title: str | None = None, visibility: str | None = None,
                 source: str = "upload", source_hash: str | None = None) -> Activity:
    """Store a whole recorded track as a completed activity in the caller's transaction, for
    bulk loads that run before anything else does (demo data, tests); an upload goes
    through ``import_track``. What reading the file cut to fit (``track.meta["cut_chars"]``)
    is noted in its summary."""
    sport = track_sport(track, sport)
    if source_hash is not None:
        refuse_duplicate(s, user.id, source_hash)
    activity = create_activity(s, user, sport, title=title or track.name, visibility=visibility,
                               source=source)
    activity.source_hash = source_hash
    positions = np.flatnonzero(np.isfinite(track.t))
    for start in range(0, len(positions), 5000):
        insert_new_points(s, track_point_rows(activity.id, track, positions[start:start + 5000], start))
    _finish_from_file(activity, summarise(clean_track(track), points=len(track)), track.meta.get("cut_chars"))
    s.flush()
    return activity


def import_track(Session: sessionmaker[Session], user: User, track: Track, sport: str | None = None,
                 title: str | None = None, visibility: str | None = None,
                 source: str = "upload", source_hash: str | None = None) -> Activity:
    """Store a whole recorded track as a completed activity, writing it in short transactions
    of ``IMPORT_CHUNK_POINTS`` points; the same checks and result as ``record_track``.

    Everything is checked and computed first, with no transaction open. The activity is
    written "created" and private, so no feed, leaderboard, other athlete's Live page or
    worker job sees it, together with its first points (so it is never a pointless fresh
    activity, which the owner's Live page would list); then the other points; then one
    transaction completes it with its summary and real visibility. If anything fails on the
    way, what was written is deleted and the error raised again; an import whose process died
    is deleted by ``core.openactivities.close_abandoned`` a day later. The activity comes back
    detached, its columns loaded."""
    if source not in IMPORT_SOURCES:
        raise ValueError(f"an import's source is one of {', '.join(IMPORT_SOURCES)}, not {source!r}")
    sport = track_sport(track, sport)
    visibility = check_visibility(visibility or user.default_visibility)
    if source_hash is not None:
        with Session() as s:
            refuse_duplicate(s, user.id, source_hash)
    summary = summarise(clean_track(track), points=len(track))
    positions = np.flatnonzero(np.isfinite(track.t))
    starts = range(0, len(positions), IMPORT_CHUNK_POINTS)
    with _import_transaction(Session, "import") as s:
        activity = create_activity(s, user, sport, title=title or track.name, visibility="private",
                                   source=source)
        activity.source_hash = source_hash
        activity_id = activity.id
        if len(positions):
            insert_new_points(s, track_point_rows(activity_id, track, positions[:IMPORT_CHUNK_POINTS], 0))
    try:
        for start in starts[1:]:
            rows = track_point_rows(activity_id, track, positions[start:start + IMPORT_CHUNK_POINTS], start)
            with _import_transaction(Session, "import") as s:
                insert_new_points(s, rows)
        with _import_transaction(Session, "import") as s:
            activity = s.get(Activity, activity_id)
            if activity is None:
                raise ActivityError("the import was removed before it finished", "import_removed")
            if source_hash is not None:
                # The same file imported twice at once: the user's row lock makes the second
                # completion wait for the first, and then see it.
                s.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
                refuse_duplicate(s, user.id, source_hash)
            _finish_from_file(activity, summary, track.meta.get("cut_chars"))
            activity.visibility = visibility
            s.flush()
            s.expunge(activity)  # readable after commit whatever the sessionmaker's expire_on_commit
        return activity
    except BaseException:
        try:
            delete_unfinished_import(Session, activity_id, "import")
        except Exception:  # noqa: BLE001 - the first error is the one to raise; the worker cleans up
            log.exception("could not delete the unfinished import %s; it is deleted once abandoned",
                          activity_id)
        raise


def insert_new_points(s: Session, rows: list[tuple]) -> None:
    """Insert rows (tuples in POINT_COLUMNS order) into an activity that has none of their
    seqs yet, as the ingest server does: COPY on PostgreSQL, the driver's executemany on
    SQLite, with no conflict check and no ORM, to keep an import's transactions short."""
    conn = s.connection()
    columns = ", ".join(POINT_COLUMNS)
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cur, \
                cur.copy(f"COPY route_points ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" * len(POINT_COLUMNS))
        conn.exec_driver_sql(f"INSERT INTO route_points ({columns}) VALUES ({marks})", rows)


def delete_unfinished_import(Session: sessionmaker[Session], activity_id: int, job: str) -> bool:
    """Delete an unfinished import, its points ``IMPORT_CHUNK_POINTS`` per short write
    transaction (newest first) and then the activity; False, deleting nothing, when the
    activity is gone or is not an unfinished import."""
    while True:
        with _import_transaction(Session, job) as s:
            activity = s.get(Activity, activity_id)
            if activity is None or not is_unfinished_import(activity.status, activity.source):
                return False
            top = s.scalar(select(RoutePoint.seq).where(RoutePoint.activity_id == activity_id)
                           .order_by(RoutePoint.seq.desc()).limit(1))
            if top is None:
                s.execute(delete(Activity).where(Activity.id == activity_id))
                return True
            s.execute(delete(RoutePoint).where(RoutePoint.activity_id == activity_id,
                                               RoutePoint.seq > top - IMPORT_CHUNK_POINTS))


@contextmanager
def _import_transaction(Session: sessionmaker[Session], job: str) -> Iterator[Session]:
    """``write_transaction``, then on SQLite a rest as long as the lock was held plus
    ``IMPORT_REST_S``: the ingest server, which meets a held lock with a retry after 2 ms
    doubling each time, retries within that rest, so it waits for one chunk at most and is
    never shut out by a run of them."""
    with write_transaction(Session, job) as s:
        held = time.perf_counter()
        sqlite = s.get_bind().dialect.name == "sqlite"
        yield s
    if sqlite:
        time.sleep(time.perf_counter() - held + IMPORT_REST_S)
