"""Moving activities' points between the database (hot) and the archive (cold).

An activity's points are archived once it started more than ``tier_cold_days`` ago and has
not been read since then; an archived activity read ``tier_hot_reads`` times comes back to
the database. ``core.storage.points`` reads either tier the same way: the activity's
``points_tier`` says where its points are.

Crash-safe order, each step committed before the next:

archive   read the hot rows; write the file; read it back and compare (``cold.verify``);
          then, in one transaction holding the activity's row, check the hot rows are still
          those written (their count and sequence numbers) and mark it cold, deleting the
          first chunk of rows; then delete the rest a chunk per transaction, each checking
          the activity is still cold. Killed before the mark, the activity is hot with all
          its rows (a file may be left: rewritten next time, or swept); after it, the file
          is read and the rows left are deleted by the next run.
restore   read the file; insert its rows (ON CONFLICT DO NOTHING, a chunk per transaction)
          while the activity is cold, so readers still read the file; mark it hot once every
          row is in; then delete the file. Killed before the mark, the next run inserts what
          is missing; after it, the file is left to the sweep.
empty     (PostgreSQL) a closed partition whose activities are all archived is emptied
          (TRUNCATE) in one transaction holding it (``core.storage.partitions``); its
          activities were archived keeping their rows. Killed before, the next run empties
          it. A restore checks, before it marks the activity hot, that its rows are all in
          the table: a partition emptied meanwhile took them, and the next run inserts them.
sweep     delete files of activities that are not cold (restored, cropped, deleted) once
          they are an hour old, so a file being archived now is never taken.

Every step is idempotent: run again, the job goes on from where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import numpy as np
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from core.activities.tables import Activity, OriginalFile
from core.config import Settings
from core.storage import cold, partitions
from core.storage.base import utcnow
from core.storage.engine import write_transaction
from core.storage.points import RoutePoint, archived_rows, hot_rows, insert_archived, point_tuples

log = logging.getLogger(__name__)

JOB = "tiers"
CHUNK = 5_000  # points per transaction
SWEEP_AFTER_S = 3600.0
BATCH = 200  # activities per worker round


def _none(step: str) -> None:
    return None


def _locked(s: Session, activity_id: int) -> Activity | None:
    q = select(Activity).where(Activity.id == activity_id)
    if s.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(of=Activity)
    return s.scalars(q).first()


def _fingerprint_db(s: Session, activity_id: int) -> tuple:
    n, lo, hi, total = s.execute(select(func.count(), func.min(RoutePoint.seq), func.max(RoutePoint.seq),
                                        func.sum(RoutePoint.seq)).where(RoutePoint.activity_id == activity_id)).one()
    return (int(n), int(lo or 0), int(hi or 0), int(total or 0))


def _fingerprint(rows: np.ndarray) -> tuple:
    if not len(rows):
        return (0, 0, 0, 0)
    seq = rows[:, 0].astype(np.int64)
    return (len(seq), int(seq.min()), int(seq.max()), int(seq.sum()))


def _delete_chunk(s: Session, activity_id: int) -> int:
    top = s.scalar(select(RoutePoint.seq).where(RoutePoint.activity_id == activity_id)
                   .order_by(RoutePoint.seq.desc()).offset(CHUNK - 1).limit(1))
    q = delete(RoutePoint).where(RoutePoint.activity_id == activity_id)
    return s.execute(q.where(RoutePoint.seq >= top) if top is not None else q).rowcount


def archive_activity(Session: sessionmaker[Session], archive: cold.Archive, activity_id: int,
                     checkpoint: Callable[[str], None] = _none, keep_rows: bool = False) -> int:
    """Move one activity's points to the archive; how many points (0: nothing to do, or it
    changed meanwhile and waits for the next run). Also finishes deleting the rows of one
    archived by a run that stopped half-way. With ``keep_rows`` its rows are left for its
    partition's emptying (PostgreSQL): reads take the file from the mark on."""
    with Session() as s:
        a = s.get(Activity, activity_id)
        if a is None:
            return 0
        user_id, tier = a.user_id, a.points_tier
        rows = hot_rows(s, activity_id) if tier == "hot" else np.empty((0, 8))
    if tier == "hot":
        checkpoint("read")
        name = cold.new_name(activity_id)
        try:
            cold.write(archive, user_id, name, rows)
            checkpoint("written")
            cold.verify(archive, user_id, name, rows)
            checkpoint("verified")
            with write_transaction(Session, JOB) as s:
                a = _locked(s, activity_id)
                if a is None or a.points_tier != "hot" or _fingerprint_db(s, activity_id) != _fingerprint(rows):
                    raise Changed
                a.points_tier, a.cold_file, a.cold_reads, a.cold_read_at = "cold", name, 0, None
                if not keep_rows:
                    _delete_chunk(s, activity_id)
        except (Changed, cold.ArchiveFileError) as exc:
            # Deleted, cropped or added to since it was read, or a file that does not hold
            # what was written: this run's file is nobody's (the next run tries again).
            cold.remove(archive, user_id, name)
            cold.remove_folder_if_empty(archive, user_id)  # the account may have gone meanwhile
            if isinstance(exc, Changed):
                return 0
            raise
        checkpoint("marked")
    while not keep_rows:  # the rows left (also after a run killed half-way through them)
        with write_transaction(Session, JOB) as s:
            a = _locked(s, activity_id)
            gone = _delete_chunk(s, activity_id) if a is not None and a.points_tier == "cold" else 0
        if not gone:
            break
        checkpoint("deleted")
    return len(rows)


class Changed(Exception):
    """The activity's points changed while a run moved them."""


def restore_activity(Session: sessionmaker[Session], archive: cold.Archive, activity_id: int,
                     checkpoint: Callable[[str], None] = _none) -> int:
    """Bring an archived activity's points back to the database; how many points."""
    with Session() as s:
        a = s.get(Activity, activity_id)
        if a is None or a.points_tier != "cold" or not a.cold_file:
            return 0
        user_id, name = a.user_id, a.cold_file
    rows = archived_rows(user_id, name)
    checkpoint("read")
    tuples = point_tuples(activity_id, rows)
    for k in range(0, len(tuples), CHUNK):
        with write_transaction(Session, JOB) as s:
            a = _locked(s, activity_id)
            if a is None or a.points_tier != "cold" or a.cold_file != name:
                return 0
            insert_archived(s, user_id, tuples[k:k + CHUNK])
        checkpoint("inserted")
    with write_transaction(Session, JOB) as s:
        a = _locked(s, activity_id)
        if a is None or a.points_tier != "cold" or a.cold_file != name:
            return 0
        if _fingerprint_db(s, activity_id)[0] < len(rows):
            return 0  # a partition emptied meanwhile took them (PostgreSQL): the next run inserts them
        # Rows the file lacks (none should be: points are added to an archived activity only
        # once it is back) would be kept: the activity is whole either way.
        a.points_tier, a.cold_file, a.cold_reads, a.cold_read_at = "hot", None, 0, utcnow()
    checkpoint("marked")
    cold.remove(archive, user_id, name)
    checkpoint("removed")
    return len(rows)


def due(s: Session, settings: Settings, older_than_days: float | None = None) -> tuple[list[int], list[int]]:
    """(activities to archive, activities to bring back), oldest first. Archived activities
    that still have rows in the table (a run stopped half-way) are among the first."""
    days = settings.tier_cold_days if older_than_days is None else older_than_days
    cutoff = utcnow() - timedelta(days=days)
    leftover = list(s.scalars(select(Activity.id).where(
        Activity.points_tier == "cold",
        select(RoutePoint.seq).where(RoutePoint.activity_id == Activity.id).exists()).order_by(Activity.id)))
    archive = leftover + list(s.scalars(select(Activity.id).where(
        Activity.points_tier == "hot", Activity.status == "completed", Activity.start_time < cutoff,
        or_(Activity.cold_read_at.is_(None), Activity.cold_read_at < cutoff)).order_by(Activity.start_time)))
    # Read often: the count of views each within the window of the one before, the last of
    # them within the window too (``point_tiers.note_view``).
    recent = utcnow() - timedelta(days=settings.tier_hot_window_days)
    back = list(s.scalars(select(Activity.id).where(
        Activity.points_tier == "cold", Activity.cold_reads >= settings.tier_hot_reads,
        Activity.cold_read_at >= recent).order_by(Activity.id)))
    return archive, back


def sweep(Session: sessionmaker[Session], archive: cold.Archive, now: float | None = None) -> int:
    """Delete the files no activity names (brought back, cropped, deleted, or written by a
    run that lost a race), an hour after they were written; each is checked again just
    before it goes."""
    now = time.time() if now is None else now
    removed = 0
    for info in cold.files(archive):
        folder, name = info.path.rsplit("/", 2)[-2:]
        written = info.mtime.timestamp() if info.mtime is not None else now
        if not (folder.startswith("u") and folder[1:].isdigit()) or now - written < SWEEP_AFTER_S:
            continue
        with Session() as s:
            named = s.scalar(select(func.count()).select_from(Activity).where(Activity.cold_file == name))
        if not named:
            cold.remove(archive, int(folder[1:]), name)
            removed += 1
    return removed


def _whole(s: Session, due_ids: set[int]) -> list[tuple[partitions.Range, list[int]]]:
    """PostgreSQL: the closed partitions holding rows whose every activity still in the table
    is due to be archived, each with those activities: once they are, it is emptied whole."""
    if not partitions.partitioned(s):
        return []
    edge = partitions.frontier(s)
    out = []
    for part in partitions.ranges(s):
        if part.hi > edge:
            break
        if not partitions.holds_rows(s, part):
            continue
        hot = list(s.scalars(select(Activity.id).where(Activity.id >= part.lo, Activity.id < part.hi,
                                                       Activity.points_tier == "hot").order_by(Activity.id)))
        if set(hot) <= due_ids:
            out.append((part, hot))
    return out


def run(Session: sessionmaker[Session], settings: Settings, older_than_days: float | None = None,
        limit: int | None = None, progress: Callable[[int, int], None] | None = None,
        checkpoint: Callable[[str], None] = _none, sweep_files: bool = True) -> dict:
    """Bring back the archived activities viewed often, archive the old ones (up to ``limit``
    of each), empty the partitions (PostgreSQL) whose activities are all archived, and sweep;
    counts of what moved. An activity that fails is logged and counted, and the others still
    move.

    On PostgreSQL, the activities of a closed partition that is all due are archived first,
    keeping their rows, and the partition is emptied once all are: no row is deleted. The
    rows of the others are deleted as they are archived."""
    archive = cold.open_archive(settings)
    with Session() as s:
        to_archive, to_restore = due(s, settings, older_than_days)
        whole = _whole(s, set(to_archive))
    in_whole = [a for _, hot in whole for a in hot]
    rest = [a for a in to_archive if not any(part.lo <= a < part.hi for part, _ in whole)]
    plan = [(a, True) for a in in_whole] + [(a, False) for a in rest]
    if limit is not None:
        plan, to_restore = plan[:limit], to_restore[:limit]
    total, done = len(plan) + len(to_restore), 0
    out = {"archived": 0, "archived_points": 0, "restored": 0, "restored_points": 0, "failed": 0,
           "partitions_emptied": 0}

    def move(kind: str, mover, activity_id: int, **kw) -> None:
        nonlocal done
        try:
            n = mover(Session, archive, activity_id, checkpoint, **kw)
        except Exception:  # noqa: BLE001 - one activity that cannot move leaves the others to move
            log.exception("activity %s could not be %s", activity_id, kind)
            out["failed"] += 1
            n = 0
        if n:
            out[kind] += 1
            out[f"{kind}_points"] += n
        done += 1
        if progress is not None:
            progress(done, total)

    for activity_id in to_restore:
        move("restored", restore_activity, activity_id)
    for activity_id, keep_rows in plan:
        move("archived", archive_activity, activity_id, keep_rows=keep_rows)
    for part, _ in whole:
        if partitions.empty(Session, part):
            out["partitions_emptied"] += 1
            checkpoint("emptied")
    out["swept"] = sweep(Session, archive) if sweep_files else 0
    return out


def status(Session: sessionmaker[Session], settings: Settings) -> dict:
    """Where the points are: activities and points per tier, the archive's files and bytes,
    on PostgreSQL the partitions (open: hot; closed: warm), and what the next run would move."""
    archive = cold.open_archive(settings)
    with Session() as s:
        per_tier = dict(s.execute(select(Activity.points_tier, func.count()).group_by(Activity.points_tier)).all())
        # Rows of archived activities waiting for their partition's emptying count as archived.
        hot_points = int(s.scalar(select(func.count()).select_from(RoutePoint).join(
            Activity, Activity.id == RoutePoint.activity_id).where(Activity.points_tier == "hot")) or 0)
        cold_points = int(s.scalar(select(func.coalesce(func.sum(Activity.point_count), 0))
                                   .where(Activity.points_tier == "cold")) or 0)
        to_archive, to_restore = due(s, settings)
        hot_bytes = partitions.table_bytes(s)
        # The files activities were imported from, kept in the archive too (core.activities.originals).
        files, kept = s.execute(select(func.count(), func.coalesce(func.sum(OriginalFile.stored_bytes), 0))
                                .select_from(OriginalFile)).one()
        originals = {"files": int(files), "bytes": int(kept)}
        parts = None
        if partitions.partitioned(s):
            edge = partitions.frontier(s)
            ranges = partitions.ranges(s)
            parts = {"open": sum(r.hi > edge for r in ranges), "closed": sum(r.hi <= edge for r in ranges),
                     "warm_points": int(s.scalar(select(func.count()).select_from(RoutePoint).join(
                         Activity, Activity.id == RoutePoint.activity_id).where(
                         Activity.points_tier == "hot",
                         RoutePoint.activity_id < max([r.hi for r in ranges if r.hi <= edge], default=0))) or 0)}
    stored = cold.files(archive)
    return {"archive": archive.url,
            "thresholds": {"cold_after_days": settings.tier_cold_days, "hot_after_reads": settings.tier_hot_reads,
                           "hot_reads_window_days": settings.tier_hot_window_days},
            "hot": {"activities": per_tier.get("hot", 0), "points": hot_points, "bytes": hot_bytes},
            "partitions": parts,
            "cold": {"activities": per_tier.get("cold", 0), "points": cold_points, "files": len(stored),
                     "bytes": sum(f.size or 0 for f in stored)},
            "due": {"archive": len(to_archive), "restore": len(to_restore)},
            "originals": originals}


__all__ = ["archive_activity", "due", "restore_activity", "run", "status", "sweep"]
