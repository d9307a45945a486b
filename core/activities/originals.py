"""The files activities were imported from, kept as the athlete uploaded them.

An upload, or an activity of a Strava export or of this tracker's own archive, is read into
points; the file itself is kept too, gzipped, so that the athlete's data export gives each
activity back as its original file besides the GPX (a FIT file holds more than any GPX:
laps, the device, its sensors). Nobody else is ever given it.

The file lives in the archive (``core.storage.cold``: a local folder, or object storage by
URL), under the athlete's folder: ``u<user_id>/originals/a<activity_id>-<token>.<kind>.gz``;
a row of ``activity_originals`` names it. Files are written and deleted outside any database
transaction, so a megabytes-long upload never holds SQLite's write lock:

* an import writes the file once its activity exists, and names it in the transaction that
  completes the activity; a failed import removes it;
* deleting an activity removes its file once the deletion is committed;
* deleting the account deletes the athlete's whole folder (``core.jobs.deletion``);
* a file no row names (its process died between the two) is swept a day later at most
  (``sweep``, from the worker's tiers job), an hour after it was written.
"""

from __future__ import annotations

import gzip
import logging
import secrets
import time
import unicodedata
import zlib
from dataclasses import dataclass

import pyarrow.fs as pafs
from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from core.activities.tables import ORIGINAL_NAME_MAX_BYTES, OriginalFile
from core.config import load_settings
from core.storage.cold import Archive, open_archive
from core.tracks.formats import detect_format

log = logging.getLogger(__name__)

GZIP_LEVEL = 6  # a GPX to about an eighth; FIT files are already dense
FOLDER = "originals"
SWEEP_AFTER_S = 3600.0  # an import writes its file seconds before it names it
PENDING = "originals_to_remove"  # in a session's info: files to remove once it commits


class OriginalFileError(RuntimeError):
    """A kept file that is missing or cannot be read back."""


@dataclass(frozen=True)
class Original:
    """An uploaded file ready to keep: its clean name, format, size and gzipped bytes."""

    name: str
    kind: str
    size: int
    gzipped: bytes


def clean_name(name: str, kind: str) -> str:
    """The file's name without its folders or control characters, cut to
    ``ORIGINAL_NAME_MAX_BYTES`` bytes of UTF-8 (a file name's limit on most systems is 255)
    without splitting a character, its format's suffix kept; ``activity.<kind>`` when
    nothing is left."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C").strip()
    if base.lower().endswith(".gz"):
        base = base[:-3]
    suffix = f".{kind}"
    if base.lower().endswith(suffix):
        base = base[:-len(suffix)]
    room = ORIGINAL_NAME_MAX_BYTES - len(suffix)
    base = base.encode()[:room].decode(errors="ignore").strip(". ") or "activity"
    return base + suffix


def pack(name: str, data: bytes) -> Original:
    """An uploaded file's bytes (uncompressed), gzipped to keep; ``name`` is what it was
    called. TrackFileError when it is no track file."""
    kind = detect_format(str(name), data)
    # mtime=0: the same file always gzips to the same bytes.
    return Original(clean_name(name, kind), kind, len(data), gzip.compress(data, GZIP_LEVEL, mtime=0))


def _folder(archive: Archive, user_id: int) -> str:
    return f"{archive.athlete_folder(user_id)}/{FOLDER}"


def _path(archive: Archive, user_id: int, file: str) -> str:
    if "/" in file or not file.endswith(".gz") or file.startswith("."):
        raise OriginalFileError(f"{file!r} is not a kept file's name")
    return f"{_folder(archive, user_id)}/{file}"


def write(archive: Archive, activity_id: int, user_id: int, original: Original) -> str:
    """Write ``original`` as a new file for ``activity_id``; the file's name (for ``keep``)."""
    file = f"a{int(activity_id)}-{secrets.token_hex(6)}.{original.kind}.gz"
    archive.fs.create_dir(_folder(archive, user_id), recursive=True)
    with archive.fs.open_output_stream(_path(archive, user_id, file), compression=None) as out:
        out.write(original.gzipped)
    return file


def remove(archive: Archive, user_id: int, file: str) -> None:
    """Delete a kept file; nothing when it is gone already."""
    try:
        archive.fs.delete_file(_path(archive, user_id, file))
    except FileNotFoundError:
        pass
    except OSError as exc:  # the sweep deletes it later
        log.warning("the kept file %s of athlete %s could not be deleted now: %s", file, user_id, exc)


def keep(s: Session, activity_id: int, user_id: int, original: Original, file: str) -> None:
    """Name ``file`` (written by ``write``) as the file ``activity_id`` was imported from."""
    s.add(OriginalFile(activity_id=activity_id, user_id=user_id, name=original.name, kind=original.kind,
                       size=original.size, stored_bytes=len(original.gzipped), file=file))
    s.flush()


def forget_after_commit(s: Session, user_id: int, activity_ids: list[int]) -> None:
    """Have the kept files of ``activity_ids`` (of ``user_id``), which this transaction
    deletes, removed once it commits. Only their names are read here: the archive is opened
    after the commit (on SQLite, the write lock is never held for it), and each file goes
    only if no row names it then (a rolled-back deletion, or one in a savepoint undone,
    keeps it); what cannot be removed is left to the sweep."""
    if not activity_ids:
        return
    files = list(s.scalars(select(OriginalFile.file).where(OriginalFile.activity_id.in_(activity_ids),
                                                           OriginalFile.user_id == user_id)))
    if not files:
        return
    pending = s.info.setdefault(PENDING, [])
    if not pending and not event.contains(s, "after_commit", _remove_pending):
        event.listen(s, "after_commit", _remove_pending)
    pending.extend((user_id, f) for f in files)


def _remove_pending(s: Session) -> None:
    pending = s.info.pop(PENDING, [])
    if not pending:
        return
    try:
        archive = open_archive(load_settings())
        with s.get_bind().engine.connect() as conn:  # a connection of its own: the session's is done
            for user_id, file in pending:
                named = conn.scalar(select(OriginalFile.activity_id).where(OriginalFile.user_id == user_id,
                                                                           OriginalFile.file == file))
                if named is None:
                    remove(archive, user_id, file)
    except Exception:  # noqa: BLE001 - the commit stands; the sweep removes what is left
        log.exception("kept files of deleted activities could not be removed now; the sweep will")


def original_of(s: Session, user_id: int, activity_id: int) -> OriginalFile | None:
    """The row of the file ``user_id``'s activity was imported from, or None (recorded on a
    device, or not theirs)."""
    return s.scalar(select(OriginalFile).where(OriginalFile.activity_id == activity_id,
                                               OriginalFile.user_id == user_id))


def described(s: Session, user_id: int, activity_id: int) -> dict | None:
    """The name, format and size of the file ``user_id``'s activity was imported from; None
    when there is none (or the activity is not theirs)."""
    row = original_of(s, user_id, activity_id)
    return None if row is None else {"name": row.name, "kind": row.kind, "bytes": row.size}


def read_gzipped(archive: Archive, row: OriginalFile) -> bytes:
    """A kept file, gzipped as it is stored; OriginalFileError when it cannot be read."""
    try:
        with archive.fs.open_input_stream(_path(archive, row.user_id, row.file), compression=None) as f:
            data = f.read()
    except (OSError, ValueError) as exc:
        raise OriginalFileError(f"the original file of activity {row.activity_id} cannot be read: {exc}") from None
    if len(data) != row.stored_bytes:
        raise OriginalFileError(f"the original file of activity {row.activity_id} is not whole")
    return data


def unpacked(archive: Archive, row: OriginalFile) -> bytes:
    """A kept file's bytes, as uploaded; OriginalFileError when they cannot be read back."""
    try:
        return gzip.decompress(read_gzipped(archive, row))
    except (OSError, EOFError, zlib.error) as exc:
        raise OriginalFileError(f"the original file of activity {row.activity_id} cannot be read: {exc}") from None


def sweep(Session: sessionmaker[Session], archive: Archive, now: float | None = None) -> int:
    """Delete the kept files no row names, an hour after they were written; how many."""
    now = time.time() if now is None else now
    if archive.fs.get_file_info(archive.base).type == pafs.FileType.NotFound:
        return 0
    removed = 0
    for info in archive.fs.get_file_info(pafs.FileSelector(archive.base, recursive=True)):
        parts = info.path.rsplit("/", 3)[-3:]
        if info.type != pafs.FileType.File or len(parts) != 3 or parts[1] != FOLDER:
            continue
        athlete, _, file = parts
        if not (athlete.startswith("u") and athlete[1:].isdigit()):
            continue
        written = info.mtime.timestamp() if info.mtime is not None else now
        if now - written < SWEEP_AFTER_S:
            continue
        user_id = int(athlete[1:])
        with Session() as s:
            named = s.scalar(select(OriginalFile.activity_id).where(OriginalFile.user_id == user_id,
                                                                    OriginalFile.file == file))
        if named is None:
            remove(archive, user_id, file)
            removed += 1
    return removed
