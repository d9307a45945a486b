"""FIT activity files (fitdecode)."""

from __future__ import annotations

import io
import warnings
from datetime import datetime

import fitdecode

from core.text import DEVICE_NAME_MAX_CHARS, TITLE_MAX_CHARS, fit, one_line
from core.tracks.formats.common import epoch
from core.tracks.track import Track, normalise_sport, track_from_rows

SEMICIRCLE_TO_DEG = 180.0 / 2**31
FIT_INDOOR_SUB_SPORTS = {"indoor_cycling", "treadmill", "virtual_activity", "indoor_running",
                         "spin", "indoor_rowing", "indoor_walking", "track_cycling"}


def fit_names(track: Track) -> None:
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


def read_fit(data: bytes) -> Track:
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
    return (epoch(stamp) if isinstance(stamp, datetime) else None, lat, lon,
            _numeric(ele), _numeric(acc), _numeric(hr), _numeric(cad))


def _numeric(value):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None
