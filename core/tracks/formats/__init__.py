"""Import GPX, TCX and FIT files into the point model, and export GPX.

Untrusted files are read defensively: a size cap before anything is parsed, XML parsed
with DTDs forbidden (so no entity expansion and no external entities), a cap on the number
of points, and every parser failure turned into a ``TrackFileError`` with a reason. The
activity and device names a file carries are cut to what the database stores (``core.text``).
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from pathlib import Path

import defusedxml.ElementTree as safe_et
import fitdecode
import gpxpy
import gpxpy.gpx
import numpy as np
from defusedxml import DefusedXmlException

from core.config import load_settings
from core.tracks.formats.common import TrackFileError, reason
from core.tracks.formats.fit import fit_names, read_fit
from core.tracks.formats.gpx import read_gpx
from core.tracks.formats.tcx import read_tcx
from core.tracks.track import Track

FORMATS = ("gpx", "tcx", "fit")  # the track files read (and by their name suffix recognised)


def load_track(path: str | Path, data: bytes | None = None) -> Track:
    """Read a GPX, TCX or FIT file (from disk, or from ``data``) into a Track."""
    settings = load_settings()
    name = str(path)
    if data is None:
        try:
            size = Path(path).stat().st_size
            if size > settings.max_upload_bytes:
                raise TrackFileError(f"file is {size} bytes, over the {settings.max_upload_bytes}-byte limit")
            data = Path(path).read_bytes()
        except OSError as exc:  # missing, unreadable, a directory, ...
            raise TrackFileError(f"cannot read file: {exc.strerror or exc}") from None
    elif len(data) > settings.max_upload_bytes:
        raise TrackFileError(f"file is {len(data)} bytes, over the {settings.max_upload_bytes}-byte limit")
    if not data:
        raise TrackFileError("file is empty")
    kind = detect_format(name, data)
    if kind != "fit":  # white space before the XML declaration (some exporters write it) is no error
        data = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    try:
        if kind == "fit":
            track = read_fit(data)
        elif kind == "tcx":
            track = read_tcx(data)
        else:
            track = read_gpx(data)
    except TrackFileError:
        raise
    except DefusedXmlException:
        raise TrackFileError(f"refused {kind.upper()} file: a DTD or entity declaration is not "
                             "allowed in track files") from None
    except (fitdecode.FitError, ValueError, TypeError, KeyError, IndexError, OverflowError,
            AttributeError, gpxpy.gpx.GPXException, safe_et.ParseError) as exc:
        raise TrackFileError(f"not a readable {kind.upper()} file: {reason(exc)}") from None
    if len(track) == 0:
        raise TrackFileError(f"not a {kind.upper()} recording: it holds no recorded points")
    if len(track) > settings.max_points_per_file:
        raise TrackFileError(f"file holds {len(track)} points, over the {settings.max_points_per_file} limit")
    fit_names(track)
    return track


def detect_format(name: str, data: bytes) -> str:
    """Tell fit, tcx or gpx from the content, falling back on the file name."""
    if len(data) >= 12 and data[8:12] == b".FIT":
        return "fit"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<") or b"<?xml" in head:
        if b"<trainingcenterdatabase" in head:
            return "tcx"
        if b"<gpx" in head:
            return "gpx"
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix in FORMATS:
        return suffix
    raise TrackFileError("unknown file type: expected GPX, TCX or FIT")


def track_files(folder: str | Path | None) -> list[Path]:
    """The track files (by ``FORMATS`` suffix) one level down in ``folder``, as the shared
    recordings are laid out (``source/file``), in name order; none when there is no folder."""
    if folder is None or not Path(folder).is_dir():
        return []
    return [p for p in sorted(Path(folder).glob("*/*")) if p.suffix.lower().lstrip(".") in FORMATS]


def readable_tracks(folder: str | Path | None) -> Iterator[tuple[Path, Track]]:
    """Each of ``track_files(folder)`` that reads, with its track; files that do not are skipped."""
    for path in track_files(folder):
        try:
            yield path, load_track(path)
        except TrackFileError:
            continue


def outdoor_recordings(folder: str | Path | None, min_duration_s: float = 300.0,
                       skip: Container[str] = ()) -> list[tuple[str, Track]]:
    """The outdoor runs and rides with GPS among ``folder``'s recordings (at least 100 fixes
    over ``min_duration_s``), each as ("parent/name", track), their file names not in
    ``skip``; the same recording exported twice (the FIT and the TCX of one race) once."""
    out, seen = [], set()
    for path, track in readable_tracks(folder):
        if path.name in skip or track.sport not in ("run", "ride") or track.indoor or track.meta.get("multisport"):
            continue
        if track.gps_points < 100:
            continue
        t = track.t[np.isfinite(track.t)]
        if t.size == 0 or np.ptp(t) < min_duration_s:
            continue
        key = (round(float(t.min())), track.gps_points)
        if key in seen:
            continue
        seen.add(key)
        out.append((f"{path.parent.name}/{path.name}", track))
    return out
