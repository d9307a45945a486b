"""The cold tier's files: an archived activity's points in Parquet, and where they live.

One file per archiving of an activity, under a folder per athlete:
``u<user_id>/a<activity_id>-<token>.parquet``; the activity's row names the file that holds
its points (``cold_file``). A file is never written twice nor changed: two runs archiving
one activity at once write two files and the row names the one whose points it still holds
(the other is swept), and a write killed half-way never touches the file in use. An activity
is archived and read back whole, so no month's file is rewritten to add or crop one activity
(object storage cannot do that in place), erasing an athlete is deleting their folder, and
opening an activity reads one object. The price is a footer per file (about a kilobyte).

Columns are integers, so delta encoding (Parquet's DELTA_BINARY_PACKED) and zstd make them
small: time in milliseconds, latitude and longitude in 1e-8 degrees (about a millimetre,
finer than a FIT file's own), elevation and accuracy in millimetres, heart rate and cadence
in tenths, and the device's sequence number. Those are also the precisions a point keeps
through archiving and back. A missing value stays missing (a null); a value beyond what the
column holds is refused when the file is verified (the activity stays in the database).

The archive is a local folder by default (``data_dir/archive``); ``TRACKER_ARCHIVE_URL`` may
name any filesystem pyarrow opens (``s3://bucket/prefix``, ``gs://...``, ``file:///...``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from core.config import PROJECT_ROOT, Settings

# (column, scale to an integer, Arrow type) in the order of a point row after activity_id.
COLUMNS = (("seq", 1, pa.int64()), ("t", 1_000, pa.int64()), ("lat", 100_000_000, pa.int64()),
           ("lon", 100_000_000, pa.int64()), ("ele", 1_000, pa.int64()), ("acc", 1_000, pa.int64()),
           ("hr", 10, pa.int64()), ("cad", 10, pa.int64()))
LIMIT = 2.0 ** 62  # scaled values beyond this are clipped, so the file fails its verification
SCHEMA = pa.schema([pa.field(name, kind, nullable=name not in ("seq", "t")) for name, _, kind in COLUMNS])
ZSTD_LEVEL = 9


class ArchiveFileError(RuntimeError):
    """An archived file that is missing or does not hold what was written."""


@dataclass(frozen=True)
class Archive:
    """Where archived points live: a pyarrow filesystem and the base path in it."""

    fs: pafs.FileSystem
    base: str
    url: str

    def path(self, user_id: int, name: str) -> str:
        if "/" in name or not name.endswith(".parquet"):
            raise ArchiveFileError(f"{name!r} is not an archived file's name")
        return f"{self.athlete_folder(user_id)}/{name}"

    def athlete_folder(self, user_id: int) -> str:
        return f"{self.base}/u{int(user_id)}"


def open_archive(settings: Settings) -> Archive:
    """The archive the settings name (a local folder is created when missing)."""
    url = settings.archive_url
    if url and "://" in url:
        fs, base = pafs.FileSystem.from_uri(url)
        return Archive(fs, base.rstrip("/"), url)
    folder = Path(url) if url else Path(settings.data_dir) / "archive"
    if not folder.is_absolute():  # the same folder for the worker, the dashboard and the command line
        folder = PROJECT_ROOT / folder
    folder.mkdir(parents=True, exist_ok=True)
    return Archive(pafs.LocalFileSystem(), str(folder.resolve()), str(folder))


def quantise(rows: np.ndarray) -> np.ndarray:
    """Point rows (seq, t, lat, lon, ele, acc, hr, cad; NaN for missing) as the archive keeps
    them: each column rounded to its precision."""
    out = np.array(rows, dtype=np.float64, copy=True).reshape(-1, len(COLUMNS))
    for k, (_, scale, _) in enumerate(COLUMNS):
        out[:, k] = np.round(out[:, k] * scale) / scale
    return out


def encode(rows: np.ndarray) -> pa.Table:
    rows = np.asarray(rows, dtype=np.float64).reshape(-1, len(COLUMNS))
    arrays = []
    for k, (_, scale, kind) in enumerate(COLUMNS):
        col = rows[:, k]
        missing = ~np.isfinite(col)
        scaled = np.clip(np.round(np.where(missing, 0, col) * scale), -LIMIT, LIMIT)
        ints = np.where(missing, 0, scaled).astype(np.int64)
        arrays.append(pa.array(ints, type=kind, mask=missing if missing.any() else None))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def decode(table: pa.Table) -> np.ndarray:
    names = table.column_names
    scale = {name: s for name, s, _ in COLUMNS}
    out = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for k, name in enumerate(names):
        col = table.column(name)
        values = col.to_numpy(zero_copy_only=False)
        out[:, k] = np.asarray(values, dtype=np.float64) / scale[name]
        if col.null_count:
            out[np.asarray(col.is_null().to_numpy(zero_copy_only=False)), k] = np.nan
    return out


def new_name(activity_id: int) -> str:
    """A file name no other write of this activity's points will have."""
    return f"a{int(activity_id)}-{secrets.token_hex(6)}.parquet"


def write(archive: Archive, user_id: int, name: str, rows: np.ndarray) -> int:
    """Write an activity's points as the new file ``name``; its bytes."""
    path = archive.path(user_id, name)
    archive.fs.create_dir(archive.athlete_folder(user_id), recursive=True)
    ints = [name for name, _, _ in COLUMNS]
    pq.write_table(encode(rows), path, filesystem=archive.fs, compression="zstd", compression_level=ZSTD_LEVEL,
                   use_dictionary=False, column_encoding=dict.fromkeys(ints, "DELTA_BINARY_PACKED"),
                   write_statistics=False)
    return archive.fs.get_file_info(path).size


def read(archive: Archive, user_id: int, name: str, columns: list[str] | None = None) -> np.ndarray:
    """An archived file's points (rows as ``quantise`` gives them; with ``columns``, those
    only, in that order); ArchiveFileError when the file is missing or unreadable."""
    path = archive.path(user_id, name)
    try:
        table = pq.read_table(path, filesystem=archive.fs, schema=SCHEMA, columns=columns)
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveFileError(f"archived points {name} cannot be read: {exc}") from None
    return decode(table)


def verify(archive: Archive, user_id: int, name: str, rows: np.ndarray) -> None:
    """Read the file back and check it holds exactly ``rows`` at the archive's precision."""
    back = read(archive, user_id, name)
    want = quantise(rows)
    if back.shape != want.shape or not np.array_equal(back, want, equal_nan=True):
        raise ArchiveFileError(f"{name} does not hold what was written")


def remove(archive: Archive, user_id: int, name: str) -> None:
    try:
        archive.fs.delete_file(archive.path(user_id, name))
    except FileNotFoundError:
        pass


def remove_athlete(archive: Archive, user_id: int) -> int:
    """Delete an athlete's whole folder; how many files it held."""
    folder = archive.athlete_folder(user_id)
    if archive.fs.get_file_info(folder).type == pafs.FileType.NotFound:
        return 0
    files = archive.fs.get_file_info(pafs.FileSelector(folder, recursive=True))
    archive.fs.delete_dir(folder)
    return sum(1 for f in files if f.type == pafs.FileType.File)


def remove_folder_if_empty(archive: Archive, user_id: int) -> None:
    folder = archive.athlete_folder(user_id)
    try:
        if not archive.fs.get_file_info(pafs.FileSelector(folder, recursive=True)):
            archive.fs.delete_dir(folder)
    except (FileNotFoundError, OSError):
        pass


def files(archive: Archive) -> list[pafs.FileInfo]:
    """Every archived file, with its size and time."""
    if archive.fs.get_file_info(archive.base).type == pafs.FileType.NotFound:
        return []
    return [f for f in archive.fs.get_file_info(pafs.FileSelector(archive.base, recursive=True))
            if f.type == pafs.FileType.File and f.base_name.endswith(".parquet")]
