"""Importing a Strava bulk export (the zip "Download or Delete Your Account" gives), or this
tracker's own archive of an athlete's data (``core.jobs.export``), which lists its activities
the same way.

``activities.csv`` at its root lists the activities, read by column name (newer exports add
columns, and some names appear twice: the first is taken); each row's ``Filename`` points at
its recording inside the zip (FIT, GPX or TCX, gzipped or not). Each activity is imported as
an upload is (``core.activities.imports.import_track``), with its ``Activity Name`` as title;
the recording's timestamps give its date. Every row gets its own outcome line:

* imported, with the new activity's id;
* skipped, with the reason: a sport this tracker does not record (swims, walks, e-bike
  rides...), a manual entry without a recording, or one already imported (the same file, or
  an activity of the same sport starting within a minute of it);
* an error for that row alone, with the reason: a path that leaves the archive, a member
  that is missing, over the size limit once decompressed, or corrupt, an unreadable
  recording. The rest of the archive still imports.

The archive is untrusted: nothing is extracted to disk; each member is read once, through a
cap of the upload limit, and all of them together through ``TOTAL_BYTES``; the number of
files and of listed activities is capped, and the listing is read as a stream.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import logging
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import IO
from urllib.parse import unquote

from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities.imports import SAME_START, import_track, recording_span, refuse_copy
from core.activities.lifecycle import ActivityError
from core.activities.originals import Original, pack
from core.config import load_settings
from core.tracks.formats import load_track
from core.tracks.formats.common import TrackFileError

log = logging.getLogger(__name__)
csv.field_size_limit(16 * 1024 * 1024)  # a long description is a long field, not an unreadable listing

# Strava's activity types and the sport each is recorded as; the others are skipped.
SPORT_OF_TYPE = {
    "run": "run", "trail run": "run", "virtual run": "run", "treadmill": "run",
    "ride": "ride", "mountain bike ride": "ride", "gravel ride": "ride", "virtual ride": "ride",
    "velomobile": "ride", "handcycle": "ride",
}
MOTORISED = {"e-bike ride", "e-mountain bike ride"}
MAX_ROWS = 100_000
MAX_MEMBERS = 200_000
TOTAL_BYTES = 8 * 1024 ** 3  # read from all members of one archive, decompressed
MAX_CSV_BYTES = 64 * 1024 * 1024
NEITHER = "not a Strava export, nor an archive of this tracker"
# This tracker's archive lists each activity's file as it is now (cropped, say) under
# "Filename", which is imported, and the file it was first imported from under this column,
# which is kept again as its original (``core.activities.originals``).
ORIGINAL_COLUMN = "Original Filename"


def path_name(name: str) -> str:
    """A kept file's name as this tracker's archive writes it into a path: "%" and ":" (which
    some systems refuse) percent-encoded, so that ``unquote`` gives the name back."""
    return name.replace("%", "%25").replace(":", "%3A")


class ArchiveError(ValueError):
    """An archive that cannot be read at all; the message says why."""


@dataclass(frozen=True)
class Row:
    """One activity listed in ``activities.csv``."""

    number: int  # 1 for the first activity row
    name: str
    kind: str
    filename: str
    visibility: str | None
    # This tracker's archive: the file the activity was first imported from ("" for one
    # recorded on a device); None in a Strava export, whose files are the originals.
    original: str | None = None


def _first(header: list[str], name: str) -> int | None:
    """The position of the first column called ``name`` (case and spaces ignored)."""
    want = name.strip().lower()
    return next((k for k, h in enumerate(header) if h.strip().lower() == want), None)


def rows_of(listing: bytes | IO[str]) -> Iterator[Row]:
    """The activities ``activities.csv`` lists (its bytes, or a text stream read as it goes),
    read by column name; ArchiveError for a listing that cannot be read."""
    if isinstance(listing, bytes):
        listing = io.StringIO(listing.decode("utf-8-sig", errors="replace"), newline="")
    try:
        yield from _rows(csv.reader(listing))
    except csv.Error as exc:
        raise ArchiveError(f"activities.csv cannot be read: {exc}") from None


def _rows(reader) -> Iterator[Row]:
    header = next(reader, None)
    if not header:
        raise ArchiveError("activities.csv is empty")
    cols = {key: _first(header, name) for key, name in (
        ("name", "Activity Name"), ("kind", "Activity Type"), ("filename", "Filename"),
        ("private", "Activity Private"), ("visibility", "Activity Visibility"),
        ("original", ORIGINAL_COLUMN))}
    if cols["kind"] is None or cols["filename"] is None:
        raise ArchiveError(f"activities.csv has no 'Activity Type' or 'Filename' column: {NEITHER}")

    def cell(row: list[str], key: str) -> str:
        k = cols[key]
        return row[k].strip() if k is not None and k < len(row) else ""

    for number, row in enumerate(reader, start=1):
        if number > MAX_ROWS:
            raise ArchiveError(f"activities.csv lists more than {MAX_ROWS} activities")
        if not any(c.strip() for c in row):
            continue
        visibility = {"everyone": "public", "followers_only": "followers", "only_me": "private"}.get(
            cell(row, "visibility").lower())
        if visibility is None and cell(row, "private").lower() in ("true", "1", "yes"):
            visibility = "private"
        yield Row(number, cell(row, "name"), cell(row, "kind"), cell(row, "filename"), visibility,
                  cell(row, "original") if cols["original"] is not None else None)


class Budget:
    """What is left of the bytes one archive's members may decompress to, and the original
    files rows have named (each is one activity's)."""

    def __init__(self, total: int = TOTAL_BYTES):
        self.left = total
        self.originals: set[str] = set()

    def spend(self, n: int, path: str) -> None:
        self.left -= n
        if self.left < 0:
            raise TrackFileError(f"{path} not read: the archive's files decompress to over {TOTAL_BYTES} bytes "
                                 "in all")


def _member(zf: zipfile.ZipFile, path: str, limit: int, budget: Budget) -> tuple[str, bytes]:
    """The recording at ``path`` (its name without ``.gz``, its bytes decompressed), read
    through a cap of ``limit`` bytes; TrackFileError says what is wrong with it."""
    clean = path.replace("\\", "/")
    if clean.startswith("/") or any(part in ("..", "") for part in clean.split("/")) or ":" in clean:
        raise TrackFileError(f"refused path {path!r}: it leaves the archive")
    try:
        info = zf.getinfo(clean)
    except KeyError:
        raise TrackFileError(f"{path} is not in the archive") from None
    if info.file_size > limit:
        raise TrackFileError(f"{path} is {info.file_size} bytes, over the {limit}-byte limit")
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, NotImplementedError,
            RuntimeError, ValueError) as exc:
        raise TrackFileError(f"{path} cannot be read from the archive: {exc}") from None
    budget.spend(len(data), path)  # what was read counts, over the limit or not
    if len(data) > limit:
        raise TrackFileError(f"{path} is over the {limit}-byte limit")
    name = clean
    if clean.lower().endswith(".gz"):
        name = clean[:-3]
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as g:
                data = g.read(limit + 1)
        except (OSError, EOFError, zlib.error, ValueError) as exc:
            raise TrackFileError(f"{path} is not a readable gzip file: {exc}") from None
        budget.spend(len(data), path)
        if len(data) > limit:
            raise TrackFileError(f"{path} decompresses to over the {limit}-byte limit")
    return name, data


def import_archive(Session: sessionmaker[Session], user: User, archive, visibility: str | None = None,
                   progress=None) -> Iterator[dict]:
    """Import the activities of a Strava export (the zip: its bytes, a path, or a binary
    file object; it is read member by member, never whole) for ``user``: one outcome
    per listed activity, as it is done (``{"row", "name", "activity_id"}``, ``{..., "skipped"}``
    or ``{..., "error"}``). ``visibility`` (else the archive's, else the athlete's default)
    applies to every activity. ArchiveError when the archive cannot be read at all."""
    limit = load_settings().max_upload_bytes
    try:
        zf = zipfile.ZipFile(io.BytesIO(archive) if isinstance(archive, bytes) else archive)
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ArchiveError(f"not a zip archive: {exc}") from None
    with zf:
        if len(zf.infolist()) > MAX_MEMBERS:
            raise ArchiveError(f"the archive holds more than {MAX_MEMBERS} files")
        names = {n.lower(): n for n in zf.namelist()}
        listing = names.get("activities.csv")
        if listing is None:
            raise ArchiveError(f"no activities.csv at the root of the archive: {NEITHER}")
        info = zf.getinfo(listing)
        if info.file_size > MAX_CSV_BYTES:
            raise ArchiveError(f"activities.csv is over {MAX_CSV_BYTES} bytes")
        try:
            with zf.open(info) as f:
                rows = list(rows_of(io.TextIOWrapper(f, "utf-8-sig", errors="replace", newline="")))
        except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, NotImplementedError,
                RuntimeError, ValueError) as exc:
            raise ArchiveError(f"activities.csv cannot be read from the archive: {exc}") from None
        if {"activities.json", "profile.json"} <= set(names):
            # This tracker's archive: an activity without an original file under its own
            # column was recorded on a device, and the GPX made of it is no original either.
            rows = [replace(r, original=r.original or "") for r in rows]
        seen: dict[str, dict] = {}  # each member read once, whatever the number of rows naming it
        budget = Budget()
        for k, row in enumerate(rows):
            if progress is not None:
                progress(k, len(rows))
            if row.filename and row.filename in seen:
                outcome = seen[row.filename]
                outcome = {"skipped": "already imported from this archive"} if "activity_id" in outcome else outcome
            else:
                outcome = _one(Session, user, zf, row, visibility, limit, budget)
                if row.filename:
                    seen[row.filename] = outcome
            yield {"row": row.number, "name": row.name, **outcome}


def _one(Session, user: User, zf: zipfile.ZipFile, row: Row, visibility: str | None, limit: int,
         budget: Budget) -> dict:
    """One row's outcome; whatever goes wrong with it is that row's error, never the archive's."""
    try:
        return _import_row(Session, user, zf, row, visibility, limit, budget)
    except Exception as exc:  # noqa: BLE001 - one row's failure is its line; the others still import
        log.exception("importing row %s of a Strava archive failed", row.number)
        return {"error": f"could not import this activity: {exc.__class__.__name__}"}


def _import_row(Session, user: User, zf: zipfile.ZipFile, row: Row, visibility: str | None, limit: int,
                budget: Budget) -> dict:
    kind = row.kind.strip().lower()
    sport = SPORT_OF_TYPE.get(kind)
    if sport is None:
        why = "a motor-assisted ride is not a ride here" if kind in MOTORISED else \
            f"{row.kind or 'an activity without a type'} is not a sport this tracker records"
        return {"skipped": why}
    if not row.filename:
        return {"skipped": "a manual entry: there is no recording to import"}
    note = None
    try:
        name, raw = _member(zf, row.filename, limit, budget)
        track = load_track(name, raw)
        digest = hashlib.sha256(raw).hexdigest()
        refuse_copy(Session, user.id, track, digest)
        original = None
        if row.original is None or row.original == row.filename:
            original = pack(name, raw)  # a Strava export's file is the original
        elif row.original:
            original, note = _original(zf, row.original, track, limit, budget)
        activity = import_track(Session, user, track, sport=sport, title=row.name or track.name or None,
                                visibility=visibility or row.visibility, source="import", source_hash=digest,
                                original=original)
    except ActivityError as exc:
        return {"skipped": str(exc)} if exc.code == "duplicate" else {"error": str(exc)}
    except TrackFileError as exc:
        return {"error": str(exc)}
    return {"activity_id": activity.id, **({"note": note} if note else {})}


def _original(zf: zipfile.ZipFile, path: str, track, limit: int, budget: Budget) -> tuple[Original | None, str | None]:
    """The original file at ``path`` of the activity ``track`` (this tracker's archive), or
    None and why it is not kept: missing, unreadable, named by another row too, or another
    recording than the activity's (a crop only shortens it)."""
    member = path.replace("\\", "/")  # as _member looks it up
    if member in budget.originals:
        return None, "its original file is not kept: another activity of the archive names the same file"
    budget.originals.add(member)
    try:
        name, raw = _member(zf, path, limit, budget)
        start, elapsed = recording_span(load_track(name, raw))
        begun, lasted = recording_span(track)
    except (TrackFileError, ActivityError) as exc:
        return None, f"its original file is not kept: {exc}"
    if begun < start - SAME_START or begun + timedelta(seconds=lasted) > start + timedelta(seconds=elapsed) + SAME_START:
        return None, "its original file is not kept: it is not the recording of this activity"
    return pack(unquote(name), raw), None
