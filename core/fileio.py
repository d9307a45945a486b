"""Import GPX, TCX and FIT files into the point model, and export GPX.

Untrusted files are read defensively: a size cap before anything is parsed, XML parsed
with DTDs forbidden (so no entity expansion and no external entities), a cap on the number
of points, and every parser failure turned into a ``TrackFileError`` with a reason. The
activity and device names a file carries are cut to what the database stores (``core.text``).
"""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime
from pathlib import Path
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_et
import fitdecode
import gpxpy
import gpxpy.gpx
import numpy as np
from defusedxml import DefusedXmlException

from core.config import load_settings
from core.points import Track, normalise_sport, track_from_rows
from core.text import DEVICE_NAME_MAX_CHARS, TITLE_MAX_CHARS, fit, one_line, xml_text

SEMICIRCLE_TO_DEG = 180.0 / 2**31
FIT_INDOOR_SUB_SPORTS = {"indoor_cycling", "treadmill", "virtual_activity", "indoor_running",
                         "spin", "indoor_rowing", "indoor_walking", "track_cycling"}


class TrackFileError(ValueError):
    """A file that cannot be imported; the message says why."""


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
    try:
        if kind == "fit":
            track = _read_fit(data)
        elif kind == "tcx":
            track = _read_tcx(data)
        else:
            track = _read_gpx(data)
    except TrackFileError:
        raise
    except DefusedXmlException:
        raise TrackFileError(f"refused {kind.upper()} file: a DTD or entity declaration is not "
                             "allowed in track files") from None
    except (fitdecode.FitError, ValueError, TypeError, KeyError, IndexError, OverflowError,
            AttributeError, gpxpy.gpx.GPXException, safe_et.ParseError) as exc:
        raise TrackFileError(f"not a readable {kind.upper()} file: {_reason(exc)}") from None
    if len(track) > settings.max_points_per_file:
        raise TrackFileError(f"file holds {len(track)} points, over the {settings.max_points_per_file} limit")
    _fit_names(track)
    return track


def _fit_names(track: Track) -> None:
    """Cut the activity and device names read from the file to what the database stores,
    noting each cut field's length in the file in ``track.meta["cut_chars"]``."""
    cut = {}
    for field, limit in (("name", TITLE_MAX_CHARS), ("device", DEVICE_NAME_MAX_CHARS)):
        original = getattr(track, field)
        if original is None:
            continue
        if len(one_line(original)) > limit:
            cut[field] = len(original)
        setattr(track, field, fit(original, limit) or None)
    if cut:
        track.meta["cut_chars"] = cut


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
    if suffix in ("fit", "tcx", "gpx"):
        return suffix
    raise TrackFileError("unknown file type: expected GPX, TCX or FIT")


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def _parse_xml(data: bytes) -> Element:
    # forbid_dtd refuses any DOCTYPE, which rules out entity expansion and external entities.
    return safe_et.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return _epoch(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _extension_values(elements) -> tuple[float | None, float | None]:
    """Heart rate and cadence from GPX extension elements (Garmin, Cluetrust and others)."""
    hr = cad = None
    for root in elements:
        for el in root.iter():
            tag = _local(el.tag).lower()
            if tag in ("hr", "heartrate") and hr is None:
                hr = _float(el.text)
            elif tag in ("cad", "cadence") and cad is None:
                cad = _float(el.text)
    return hr, cad


def _read_gpx(data: bytes) -> Track:
    _parse_xml(data)  # refuses DTDs and entities before gpxpy sees the text
    gpx = gpxpy.parse(io.StringIO(data.decode("utf-8", errors="replace")))
    rows = []
    sport_label = None
    name = gpx.name
    for trk in gpx.tracks:
        sport_label = sport_label or trk.type
        name = name or trk.name
        for seg in trk.segments:
            for p in seg.points:
                hr, cad = _extension_values(p.extensions)
                acc = None
                if p.horizontal_dilution is not None:
                    acc = 5.0 * p.horizontal_dilution  # HDOP times a typical 5 m receiver error
                rows.append((_epoch(p.time), p.latitude, p.longitude, p.elevation, acc, hr, cad))
    if not gpx.tracks:
        for route in gpx.routes:
            for p in route.points:
                rows.append((_epoch(p.time), p.latitude, p.longitude, p.elevation, None, None, None))
    sport = normalise_sport(sport_label) if sport_label else normalise_sport(name)
    return track_from_rows(rows, sport=sport, name=name, device=gpx.creator)


def _child_text(el: Element, *path: str) -> str | None:
    node = el
    for part in path:
        node = next((c for c in node if _local(c.tag) == part), None)
        if node is None:
            return None
    return node.text


def _read_tcx(data: bytes) -> Track:
    root = _parse_xml(data)
    if _local(root.tag) != "TrainingCenterDatabase":
        raise TrackFileError("not a TCX file: root element is not TrainingCenterDatabase")
    rows = []
    sports = []
    device = None
    for activity in root.iter():
        if _local(activity.tag) not in ("Activity", "MultiSportSession"):
            continue
        sports.append(activity.get("Sport"))
        device = device or _child_text(activity, "Creator", "Name")
        for tp in activity.iter():
            if _local(tp.tag) != "Trackpoint":
                continue
            rows.append((
                _parse_time(_child_text(tp, "Time")),
                _float(_child_text(tp, "Position", "LatitudeDegrees")),
                _float(_child_text(tp, "Position", "LongitudeDegrees")),
                _float(_child_text(tp, "AltitudeMeters")),
                None,
                _float(_child_text(tp, "HeartRateBpm", "Value")),
                _float(_child_text(tp, "Cadence")),
            ))
    labels = {normalise_sport(s) for s in sports if s}
    sport = labels.pop() if len(labels) == 1 else "other"
    track = track_from_rows(rows, sport=sport, device=device)
    track.meta["activities"] = len(sports)
    if len(sports) > 1:
        track.meta["multisport"] = True
    return track


def _read_fit(data: bytes) -> Track:
    rows = []
    sessions = []
    device = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = fitdecode.FitReader(io.BytesIO(data), check_crc=fitdecode.CrcCheck.DISABLED,
                                     error_handling=fitdecode.ErrorHandling.WARN)
        with reader as fit:
            for frame in fit:
                if not isinstance(frame, fitdecode.FitDataMessage):
                    continue
                if frame.name == "record":
                    rows.append(_fit_record(frame))
                elif frame.name == "session":
                    sessions.append((frame.get_value("sport", fallback=None),
                                     frame.get_value("sub_sport", fallback=None)))
                elif frame.name == "file_id" and device is None:
                    maker = frame.get_value("manufacturer", fallback=None)
                    product = frame.get_value("garmin_product", fallback=None) or frame.get_value("product", fallback=None)
                    device = "/".join(str(v) for v in (maker, product) if v is not None) or None
    sport_labels = {str(s) for s, _ in sessions if s not in (None, "transition")}
    sport = normalise_sport(sport_labels.pop()) if len(sport_labels) == 1 else "other"
    indoor = any(str(sub) in FIT_INDOOR_SUB_SPORTS for _, sub in sessions)
    track = track_from_rows(rows, sport=sport, device=device, indoor=indoor)
    track.meta["sessions"] = len(sessions)
    if len(sport_labels) > 1:
        track.meta["multisport"] = True
    return track


def _fit_value(frame, *names):
    for name in names:
        value = frame.get_value(name, fallback=None)
        if value is not None:
            return value
    return None


def _fit_record(frame) -> tuple:
    lat = frame.get_value("position_lat", fallback=None)
    lon = frame.get_value("position_long", fallback=None)
    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
        lat, lon = lat * SEMICIRCLE_TO_DEG, lon * SEMICIRCLE_TO_DEG
    else:
        lat = lon = None
    stamp = frame.get_value("timestamp", fallback=None)
    ele = _fit_value(frame, "enhanced_altitude", "altitude")
    acc = _fit_value(frame, "gps_accuracy")
    hr = _fit_value(frame, "heart_rate")
    cad = _fit_value(frame, "cadence")
    return (_epoch(stamp) if isinstance(stamp, datetime) else None, lat, lon,
            _numeric(ele), _numeric(acc), _numeric(hr), _numeric(cad))


def _numeric(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def to_gpx(track: Track, name: str | None = None) -> str:
    """Serialise the points that carry a position and a time as a GPX 1.1 document (the name
    without the characters XML forbids, which an older title may hold)."""
    gpx = gpxpy.gpx.GPX()
    gpx.creator = "tracker"
    trk = gpxpy.gpx.GPXTrack(name=xml_text(name or track.name) or None)
    trk.type = track.sport
    gpx.tracks.append(trk)
    seg = gpxpy.gpx.GPXTrackSegment()
    trk.segments.append(seg)
    ok = np.isfinite(track.lat) & np.isfinite(track.lon) & np.isfinite(track.t)
    for i in np.flatnonzero(ok):
        ele = float(track.ele[i]) if np.isfinite(track.ele[i]) else None
        seg.points.append(gpxpy.gpx.GPXTrackPoint(
            float(track.lat[i]), float(track.lon[i]), elevation=ele,
            time=datetime.fromtimestamp(float(track.t[i]), tz=UTC)))
    return gpx.to_xml(version="1.1")
