"""Uploaded and imported files become activities, written in short transactions."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import repeat

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities import originals
from core.activities.lifecycle import ActivityError, check_visibility, create_activity
from core.activities.originals import Original
from core.activities.references import forget_activities
from core.activities.shown import hold_hiding, settle_shown
from core.activities.summary import apply_summary
from core.activities.tables import SPORTS, Activity
from core.config import load_settings
from core.storage.base import utcnow
from core.storage.cold import open_archive
from core.storage.engine import write_transaction
from core.storage.points import POINT_FIELDS, delete_newest, insert_new_points
from core.tracks.cleaning import clean_track
from core.tracks.formats import load_track
from core.tracks.stats import Summary, summarise
from core.tracks.track import Track

log = logging.getLogger(__name__)
# Where an activity made from a file comes from; one of these still "created" is an import
# being written, or one whose process died midway.
IMPORT_SOURCES = ("upload", "import")
# Points per write transaction of an import, against a 50 ms budget: importing the largest
# real recording (24,239 points) on a busy two-core machine held SQLite's write lock a median
# 11 ms per chunk, and took 25 ms per transaction on PostgreSQL.
IMPORT_CHUNK_POINTS = 2000
IMPORT_REST_S = 0.005  # added to each import transaction's rest on SQLite; see _import_transaction


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


def as_sport(track: Track, sport: str) -> Track:
    """The track cleaned and summarised as the sport it is recorded as (its limits: a file
    saying "other" uploaded as a run is a run), as its stored points are later."""
    return track if track.sport == sport else replace(track, sport=sport)


def track_point_rows(activity_id: int, track: Track, positions: np.ndarray, first_seq: int) -> list[tuple]:
    """Rows (tuples in POINT_COLUMNS order) for the track's points at ``positions`` (indices
    of points with a finite time), numbered from ``first_seq``; a missing value becomes NULL."""
    columns = [track.t[positions].tolist()]
    for name in POINT_FIELDS:
        values = getattr(track, name)[positions]
        columns.append(np.where(np.isfinite(values), values, None).tolist())
    seqs = range(first_seq, first_seq + len(positions))
    return list(zip(repeat(activity_id), seqs, *columns))


def _finish_from_file(s: Session, activity: Activity, summary: Summary, cut_chars: dict | None) -> None:
    apply_summary(activity, summary)
    settle_shown(s, activity)
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
    hold_hiding(s, [user.id])  # before any row (``core.social.privacy.hold_hiding``)
    if source_hash is not None:
        refuse_duplicate(s, user.id, source_hash)
    activity = create_activity(s, user, sport, title=title or track.name, visibility=visibility,
                               source=source)
    activity.source_hash = source_hash
    positions = np.flatnonzero(np.isfinite(track.t))
    for start in range(0, len(positions), 5000):
        insert_new_points(s, track_point_rows(activity.id, track, positions[start:start + 5000], start))
    _finish_from_file(s, activity, summarise(clean_track(as_sport(track, sport)), points=len(track)),
                      track.meta.get("cut_chars"))
    s.flush()
    return activity


def import_track(Session: sessionmaker[Session], user: User, track: Track, sport: str | None = None,
                 title: str | None = None, visibility: str | None = None,
                 source: str = "upload", source_hash: str | None = None,
                 original: Original | None = None) -> Activity:
    """Store a whole recorded track as a completed activity, writing it in short transactions
    of ``IMPORT_CHUNK_POINTS`` points; the same checks and result as ``record_track``.
    ``original``, the file it was read from, is kept with it (``core.activities.originals``):
    written to the archive once the activity exists, named in the completing transaction.

    Everything is checked and computed first, with no transaction open. The activity is
    written "created" and private, so no feed, leaderboard, other athlete's Live page or
    worker job sees it, together with its first points (so it is never a pointless fresh
    activity, which the owner's Live page would list); then the other points; then one
    transaction completes it with its summary and real visibility. If anything fails on the
    way, what was written is deleted and the error raised again; an import whose process died
    is deleted by ``core.activities.open.close_abandoned`` a day later. The activity comes back
    detached, its columns loaded."""
    if source not in IMPORT_SOURCES:
        raise ValueError(f"an import's source is one of {', '.join(IMPORT_SOURCES)}, not {source!r}")
    sport = track_sport(track, sport)
    visibility = check_visibility(visibility or user.default_visibility)
    if source_hash is not None:
        with Session() as s:
            refuse_duplicate(s, user.id, source_hash)
    summary = summarise(clean_track(as_sport(track, sport)), points=len(track))
    positions = np.flatnonzero(np.isfinite(track.t))
    starts = range(0, len(positions), IMPORT_CHUNK_POINTS)
    with _import_transaction(Session, "import") as s:
        activity = create_activity(s, user, sport, title=title or track.name, visibility="private",
                                   source=source)
        activity.source_hash = source_hash
        activity_id = activity.id
        if len(positions):
            insert_new_points(s, track_point_rows(activity_id, track, positions[:IMPORT_CHUNK_POINTS], 0))
    archive, kept, unkept, completed = None, None, None, False
    try:
        if original is not None:
            try:
                archive = open_archive(load_settings())
                kept = originals.write(archive, activity_id, user.id, original)
            except (OSError, ValueError) as exc:  # the activity matters more than its file: imported without it
                log.exception("the file of import %s could not be kept in the archive", activity_id)
                unkept = f"the file could not be kept for your exports ({exc.__class__.__name__})"
        for start in starts[1:]:
            rows = track_point_rows(activity_id, track, positions[start:start + IMPORT_CHUNK_POINTS], start)
            with _import_transaction(Session, "import") as s:
                insert_new_points(s, rows)
        with _import_transaction(Session, "import") as s:
            hold_hiding(s, [user.id])  # before any row (``core.social.privacy.hold_hiding``)
            activity = s.get(Activity, activity_id)
            if activity is None:
                raise ActivityError("the import was removed before it finished", "import_removed")
            if source_hash is not None:
                # The same file imported twice at once: the user's row lock makes the second
                # completion wait for the first, and then see it.
                s.execute(select(User.id).where(User.id == user.id).with_for_update(key_share=True))
                refuse_duplicate(s, user.id, source_hash)
            _finish_from_file(s, activity, summary, track.meta.get("cut_chars"))
            activity.visibility = visibility
            if kept is not None:
                originals.keep(s, activity_id, user.id, original, kept)
            elif unkept:
                activity.summary = {**activity.summary, "original_not_kept": unkept}
            s.flush()
            s.expunge(activity)  # readable after commit whatever the sessionmaker's expire_on_commit
        completed = True
        return activity
    except BaseException:
        try:
            delete_unfinished_import(Session, activity_id, "import")
        except Exception:  # noqa: BLE001 - the first error is the one to raise; the worker cleans up
            log.exception("could not delete the unfinished import %s; it is deleted once abandoned",
                          activity_id)
        if kept is not None and not completed:  # no committed row names it
            originals.remove(archive, user.id, kept)
        raise


def delete_unfinished_import(Session: sessionmaker[Session], activity_id: int, job: str) -> bool:
    """Delete an unfinished import, its points ``IMPORT_CHUNK_POINTS`` per short write
    transaction (newest first) and then the activity; False, deleting nothing, when the
    activity is gone or is not an unfinished import."""
    while True:
        with _import_transaction(Session, job) as s:
            activity = s.get(Activity, activity_id)
            if activity is None or not is_unfinished_import(activity.status, activity.source):
                return False
            if not delete_newest(s, activity_id, IMPORT_CHUNK_POINTS):
                forget_activities(s, activity.user_id, [activity_id])
                s.execute(delete(Activity).where(Activity.id == activity_id))
                return True


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


EARLIEST = 315_532_800.0  # 1980-01-01: older times are a device's unset clock
SAME_START = timedelta(seconds=60)
SAME_LENGTH = 0.1  # the same recording lasts as long, give or take this share (or SAME_START)
SAME_OVERLAP = 0.9  # or this share of the shorter recording is within the other's time...
SAME_SHORTER = 0.5  # ...and the shorter lasts at least this share of the longer


def recording_span(track: Track) -> tuple[datetime, float]:
    """When a file's recording began and how long it lasted, from the times the cleaner keeps
    (as the activity will store them: a lone point with an unset clock is left out);
    ActivityError when it holds no times (a planned route), none of a plausible date (a
    device's unset clock, or the future), or a single moment (one point, or every point at
    the same time: nothing was recorded)."""
    if not np.isfinite(track.t).any():
        raise ActivityError("the recording holds no times: a planned route, not an activity", "no_times")
    times = clean_track(track, spikes=False).times
    if not times.size or float(times[0]) < EARLIEST:
        raise ActivityError("the recording's times are not a plausible date (before 1980 or in the future)",
                            "implausible_date")
    if float(times[-1] - times[0]) <= 0:
        raise ActivityError("the recording holds a single moment (one point, or every point at the same time): "
                            "nothing to import", "no_duration")
    return datetime.fromtimestamp(float(times[0]), tz=UTC), float(times[-1] - times[0])


def same_recording(s: Session, user_id: int, start: datetime, elapsed_s: float) -> Activity | None:
    """The athlete's activity (completed, or still being recorded) that is the same
    recording as one from ``start`` lasting ``elapsed_s``, whatever file it came in and
    whatever sport it was given: one sharing time with it, starting within a minute and
    lasting about as long (``SAME_LENGTH``), or one sharing most of its time with it
    (``SAME_OVERLAP``; another export may leave out the first minutes a device logged before
    it had a position). A false start just before a recording, or two short sprints a minute
    apart, share no time, and are not the same."""
    end = start + timedelta(seconds=elapsed_s)
    spread = max(SAME_START.total_seconds(), SAME_LENGTH * elapsed_s)
    earliest = start - timedelta(seconds=elapsed_s / SAME_SHORTER) - SAME_START
    now = utcnow()
    for other in s.scalars(select(Activity).where(
            Activity.user_id == user_id, Activity.status.in_(("completed", "active", "paused", "stopped")),
            Activity.start_time.between(earliest, end + SAME_START)).order_by(Activity.id)):
        # One still being recorded (its device's upload, then the watch's file) lasts until now.
        other_elapsed = max(0.0, other.elapsed_time_s or 0.0) if other.status == "completed" \
            else max(0.0, (now - other.start_time).total_seconds())
        other_end = other.start_time + timedelta(seconds=other_elapsed)
        shared = (min(end, other_end) - max(start, other.start_time)).total_seconds()
        if shared > 0 and abs((other.start_time - start).total_seconds()) <= SAME_START.total_seconds() \
                and abs(other_elapsed - elapsed_s) <= spread:
            return other
        shorter, longer = sorted((elapsed_s, other_elapsed))
        if shorter > 0 and shared >= SAME_OVERLAP * shorter and shorter >= SAME_SHORTER * longer:
            return other
    return None


def refuse_copy(Session: sessionmaker[Session], user_id: int, track: Track, digest: str) -> None:
    """ActivityError ("duplicate") if the athlete already has this recording: the file with
    this hash, or the same recording from another file (``same_recording``); ActivityError
    too if its times are no plausible date or no length (``recording_span``)."""
    start, elapsed = recording_span(track)
    with Session() as s:
        refuse_duplicate(s, user_id, digest)
        same = same_recording(s, user_id, start, elapsed)
        if same is not None and same.status != "completed":
            raise ActivityError(f"activity {same.id}, a {same.sport} at the same time, is still being recorded "
                                "on a device: the same recording", "duplicate")
        if same is not None:
            raise ActivityError(f"already imported: activity {same.id} is the same {same.sport} at the same time",
                                "duplicate")


def import_file(Session: sessionmaker[Session], user: User, name: str, data: bytes, sport: str | None = None,
                visibility: str | None = None) -> Activity:
    """Import one uploaded file in short write transactions of its own (``Session`` is the
    session factory, ``user`` may be detached); TrackFileError or ActivityError say why not:
    among others, a recording without plausible times or length, or one already imported
    (the same file, or the same recording in another file)."""
    track: Track = load_track(name, data)
    chosen = track_sport(track, sport)
    digest = hashlib.sha256(data).hexdigest()  # the same file twice is refused
    refuse_copy(Session, user.id, track, digest)
    return import_track(Session, user, track, sport=chosen, title=track.name or None, visibility=visibility,
                        source="upload", source_hash=digest, original=originals.pack(name, data))
