"""The files activities were imported from, kept as the athlete uploaded them.

An upload, or an activity of a Strava export or of this tracker's own archive, is read into
points; the file itself is kept too, gzipped, with the activity (``activity_originals``), so
that the athlete's data export gives each activity back as its original file besides the GPX
(a FIT file holds more than any GPX: laps, the device, its sensors). It goes with the
activity, through the foreign key's ON DELETE CASCADE, and is never shown to anyone else.

The bytes are compressed before any transaction opens (``pack``); the row is written in the
import's first transaction, so an import that fails or dies midway leaves no file behind
once it is cleaned up (``core.activities.imports.delete_unfinished_import``).
"""

from __future__ import annotations

import gzip
import unicodedata
import zlib
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.activities.tables import ORIGINAL_NAME_MAX_CHARS, OriginalFile
from core.tracks.formats import detect_format

GZIP_LEVEL = 6  # a GPX to about an eighth; FIT files are already dense


@dataclass(frozen=True)
class Original:
    """An uploaded file ready to keep: its clean name, format, size and gzipped bytes."""

    name: str
    kind: str
    size: int
    gzipped: bytes


def clean_name(name: str, kind: str) -> str:
    """The file's name without its folders or control characters, cut to what is stored,
    its format's suffix kept; ``activity.<kind>`` when nothing is left."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C").strip()
    if base.lower().endswith(".gz"):
        base = base[:-3]
    base = base.strip(". ") or "activity"
    suffix = f".{kind}"
    if not base.lower().endswith(suffix):
        base += suffix
    if len(base) > ORIGINAL_NAME_MAX_CHARS:
        base = base[:ORIGINAL_NAME_MAX_CHARS - len(suffix)] + suffix
    return base


def pack(name: str, data: bytes) -> Original:
    """An uploaded file's bytes (uncompressed), gzipped to keep; ``name`` is what it was called."""
    kind = detect_format(str(name), data)  # TrackFileError when it is none of FORMATS
    # mtime=0: the same file always gzips to the same bytes.
    return Original(clean_name(name, kind), kind, len(data), gzip.compress(data, GZIP_LEVEL, mtime=0))


def keep(s: Session, activity_id: int, user_id: int, original: Original) -> None:
    """Keep ``original`` as the file ``activity_id`` (of ``user_id``) was imported from."""
    s.add(OriginalFile(activity_id=activity_id, user_id=user_id, name=original.name, kind=original.kind,
                       size=original.size, gzipped=original.gzipped))
    s.flush()


def original_of(s: Session, user_id: int, activity_id: int) -> OriginalFile | None:
    """The file ``user_id``'s activity was imported from, or None (recorded on a device, or
    not theirs)."""
    return s.scalar(select(OriginalFile).where(OriginalFile.activity_id == activity_id,
                                               OriginalFile.user_id == user_id))


def described(s: Session, user_id: int, activity_id: int) -> dict | None:
    """The name, format and size of the file ``user_id``'s activity was imported from,
    without reading it; None when there is none (or the activity is not theirs)."""
    row = s.execute(select(OriginalFile.name, OriginalFile.kind, OriginalFile.size).where(
        OriginalFile.activity_id == activity_id, OriginalFile.user_id == user_id)).first()
    return None if row is None else {"name": row.name, "kind": row.kind, "bytes": row.size}


def unpacked(row: OriginalFile) -> bytes:
    """A kept file's bytes, as uploaded; ValueError when they cannot be read back."""
    try:
        return gzip.decompress(row.gzipped)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"the original file of activity {row.activity_id} cannot be read: {exc}") from None
