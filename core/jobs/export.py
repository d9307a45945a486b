"""An athlete's archive of everything held about them, as a zip.

The athlete asks (Settings, at most once an hour, or ``python -m core export``); the worker
builds it in a thread of its own, counting its steps in the ``data_exports`` row so the page
shows progress; it is kept ``TRACKER_EXPORT_KEEP_HOURS`` (72 by default) and then deleted,
file and row. What the zip holds, and its writing, are ``core.jobs.export_zip``'s.

Building is crash-safe: the zip is written to a ``.part`` file of its own build, renamed
when whole, and the row says ready only then, if the build still holds the row's claim. A
build that went quiet (the worker killed) is taken up again after ``STALE``; a row whose
account went meanwhile has its file deleted. One worker's update takes a waiting export, so
two never build the same one.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import DataExport
from core.config import Settings, load_settings
from core.jobs.export_zip import ExportError, write_export
from core.storage.base import utcnow
from core.storage.engine import write_transaction

log = logging.getLogger(__name__)

JOB = "export"
STALE = timedelta(minutes=10)  # a build silent this long (no progress) stopped with its worker: built again
ASK_EVERY = timedelta(hours=1)  # a new archive may be asked for this long after a ready one


def export_folder(settings: Settings) -> Path:
    return Path(settings.data_dir) / "exports"


def export_keep_hours() -> float:
    """How long a built archive is kept (``TRACKER_EXPORT_KEEP_HOURS``, 72 by default)."""
    return load_settings().export_keep_hours


def request_export(s: Session, user_id: int, now: datetime | None = None) -> DataExport:
    """Ask for an archive of ``user_id``'s data; the one already asked for and not built
    yet stands for it. ExportError when the last one was asked for less than
    ``ASK_EVERY`` ago and is ready (it is what they would get)."""
    now = now or utcnow()
    latest = latest_export(s, user_id)
    if latest is not None and latest.status in ("queued", "building"):
        return latest
    if latest is not None and latest.status == "ready" and latest.requested_at > now - ASK_EVERY:
        raise ExportError(f"your archive of {latest.requested_at:%H:%M} UTC is ready: a new one may be asked for "
                          f"from {latest.requested_at + ASK_EVERY:%H:%M} UTC")
    export = DataExport(user_id=user_id, status="queued", file_name=f"{secrets.token_hex(16)}.zip", requested_at=now)
    try:
        with s.begin_nested():
            s.add(export)
            s.flush()
    except IntegrityError:  # asked at the same moment elsewhere (another tab): that one stands
        return s.scalars(select(DataExport).where(DataExport.user_id == user_id,
                                                  DataExport.status.in_(("queued", "building")))).one()
    return export


def latest_export(s: Session, user_id: int) -> DataExport | None:
    return s.scalars(select(DataExport).where(DataExport.user_id == user_id)
                     .order_by(DataExport.id.desc()).limit(1)).first()


def export_file(settings: Settings, s: Session, user_id: int, export_id: int) -> Path:
    """The file of ``user_id``'s ready export ``export_id``; ExportError for anything else
    (another athlete's, not ready, expired)."""
    export = s.get(DataExport, export_id)
    if export is None or export.user_id != user_id:
        raise ExportError("there is no such export of yours")
    if export.status != "ready" or export.expires_at is None or export.expires_at <= utcnow():
        raise ExportError("this export is not ready, or has expired")
    path = export_folder(settings) / export.file_name
    if not path.is_file():
        raise ExportError("this export's file is gone: ask for a new one")
    return path


def build_exports(Session: sessionmaker[Session], settings: Settings, limit: int = 1) -> dict:
    """The worker's job: build up to ``limit`` asked-for exports (and those whose build
    stopped), then delete the expired ones. Counts of what it did."""
    built = failed = 0
    for _ in range(limit):
        claimed = _claim(Session)
        if claimed is None:
            break
        outcome = build_one(Session, settings, *claimed)
        built += outcome == "ready"
        failed += outcome == "failed"
    expired = expire_exports(Session, settings)
    return {"exports": {"built": built, "failed": failed, "expired": expired}} if built or failed or expired else {}


def _claim(Session: sessionmaker[Session]) -> tuple[int, str] | None:
    """Take the oldest waiting export (or one whose build went quiet for ``STALE``): its id
    and this build's claim. The update says whether it was still free, so two workers never
    build the same export."""
    now = utcnow()
    free = or_(DataExport.status == "queued",
               (DataExport.status == "building") & (func.coalesce(DataExport.beat_at, DataExport.started_at)
                                                    < now - STALE))
    for _ in range(3):  # another worker took it meanwhile: the next one
        with Session() as s:
            export_id = s.scalar(select(DataExport.id).where(free).order_by(DataExport.id).limit(1))
        if export_id is None:
            return None
        claim = secrets.token_hex(8)
        with write_transaction(Session, JOB) as s:
            taken = s.execute(update(DataExport).where(DataExport.id == export_id, free).values(
                status="building", started_at=now, beat_at=now, claim=claim, done=0)).rowcount
        if taken:
            return export_id, claim
    return None


class Superseded(RuntimeError):
    """This build's claim was taken over (it went quiet too long) or its export deleted."""


def build_one(Session: sessionmaker[Session], settings: Settings, export_id: int, claim: str) -> str:
    """Build export ``export_id`` under ``claim``: "ready", "failed", or "superseded" (the
    row went, or another build took it over)."""
    folder = export_folder(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with Session() as s:
        export = s.get(DataExport, export_id)
        if export is None:
            return "superseded"
        user_id, path = export.user_id, folder / export.file_name
    part = folder / f"{export.file_name}.{claim}.part"
    ours = (DataExport.id == export_id) & (DataExport.claim == claim)

    def progress(done: int, total: int) -> None:
        with write_transaction(Session, JOB) as s:
            if not s.execute(update(DataExport).where(ours).values(done=done, total=total, beat_at=utcnow())).rowcount:
                raise Superseded(f"export {export_id} is no longer this build's")

    try:
        with open(part, "wb") as f:
            write_export(Session, user_id, f, progress)
            f.flush()
            os.fsync(f.fileno())
        now = utcnow()
        with write_transaction(Session, JOB) as s:
            os.replace(part, path)  # under the claim's check: a taken-over build never replaces a newer file
            marked = s.execute(update(DataExport).where(ours).values(
                status="ready", finished_at=now, expires_at=now + timedelta(hours=settings.export_keep_hours),
                size_bytes=path.stat().st_size, claim=None)).rowcount
            if not marked:
                raise Superseded(f"export {export_id} is no longer this build's")
    except Superseded:
        part.unlink(missing_ok=True)
        with Session() as s:
            if s.get(DataExport, export_id) is None:  # the account (and the row with it) went meanwhile
                path.unlink(missing_ok=True)
        return "superseded"
    except Exception as exc:  # noqa: BLE001 - a failed build is the row's error, shown to the athlete
        log.exception("export %s failed", export_id)
        part.unlink(missing_ok=True)
        with write_transaction(Session, JOB) as s:
            failed = s.execute(update(DataExport).where(ours).values(
                status="failed", finished_at=utcnow(), claim=None,
                error=f"the archive could not be built ({exc.__class__.__name__})")).rowcount
        return "failed" if failed else "superseded"  # not ours any more: the account went, or a newer build
    return "ready"


def expire_exports(Session: sessionmaker[Session], settings: Settings, user_id: int | None = None) -> int:
    """Delete the expired exports, file then row (or, with ``user_id``, all of theirs); how many."""
    folder = export_folder(settings)
    with Session() as s:
        q = select(DataExport.id, DataExport.file_name)
        q = q.where(DataExport.user_id == user_id) if user_id is not None else q.where(
            or_(DataExport.expires_at <= utcnow(),
                (DataExport.status == "failed") & (DataExport.finished_at <= utcnow() - timedelta(hours=settings.export_keep_hours))))
        gone = s.execute(q).all()
    for _, name in gone:
        for file in (folder / name, *folder.glob(f"{name}.*.part")):
            file.unlink(missing_ok=True)
    if gone:
        with write_transaction(Session, JOB) as s:
            s.execute(delete(DataExport).where(DataExport.id.in_([g[0] for g in gone])))
    return len(gone)
