"""The phone apps' formats, parsed into ``core.devices.fixes.Fix`` without I/O.

OsmAnd protocol (Traccar Client, OsmAnd's online tracking, and most trackers that speak to a
Traccar server): query or form parameters, or the JSON body Traccar Client 9 and later sends.
OwnTracks: its HTTP mode's JSON. Every function raises ``ProtocolError`` with a reason for a
request it cannot use; docs/phone-apps.md describes what is read from each.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from core.devices.fixes import Fix, FixError, check_fix
from core.text import clean
from realtime.protocol import MAX_POINTS_PER_BATCH, ProtocolError
from realtime.protocol import number as protocol_number

KNOTS = 1852.0 / 3600.0  # m/s per knot: the OsmAnd protocol's speeds are in knots
KMH = 1.0 / 3.6
INF = float("inf")
ISO_DATE = re.compile(r"\s*\d{4}-\d\d-\d\d")  # a time that starts with its date
MAX_TEXT = 64  # the longest motion hint or device id kept from a request
# An ISO time whose "+hh:mm" arrived as " hh:mm" (a plus left unencoded in a query).
LOST_PLUS = re.compile(r"(T\d\d:\d\d(:\d\d(\.\d+)?)?) (\d\d:?\d\d)$")


# -- values ------------------------------------------------------------------------------

def number(value, name: str, required: bool = False) -> float | None:
    """A finite number from a JSON number or a parameter's text; None when absent."""
    if value is None or value == "":
        if required:
            raise ProtocolError("missing_field", f"'{name}' is required")
        return None
    if isinstance(value, str):
        return _number_text(value, name)
    return protocol_number(value, name)  # a JSON number's checks: not a flag, finite, in range


def _number_text(value: str, name: str) -> float:
    """A parameter's text as a finite number: ASCII digits, a sign, a point and an exponent
    (``float`` alone would also take "1_0", "inf" and other scripts' digits)."""
    if len(value) > 40:
        raise ProtocolError("invalid_value", f"'{name}' is too long for a number")
    try:
        number = float(value)  # the usual case: a plain decimal, checked below without a regex
    except ValueError:
        raise ProtocolError("wrong_type", f"'{name}' must be a number") from None
    if number != number or number in (INF, -INF):  # "nan", "inf", "1e999"
        raise ProtocolError("invalid_value", f"'{name}' must be finite")
    if "_" in value or not value.isascii():
        raise ProtocolError("wrong_type", f"'{name}' must be a number")
    return number


def timestamp(value, name: str, now: float) -> float:
    """Unix seconds (milliseconds when the number is that large, as some trackers send) or an
    ISO 8601 time (UTC unless it says otherwise); the server's time when absent."""
    if value is None or value == "":
        return now
    if isinstance(value, str) and (":" in value or "T" in value or ISO_DATE.match(value)):
        if len(value) > 40:
            raise ProtocolError("invalid_value", f"'{name}' is too long for a time")
        try:
            moment = datetime.fromisoformat(LOST_PLUS.sub(r"\1+\4", value.strip()))
        except ValueError:
            raise ProtocolError("invalid_value", f"'{name}' must be Unix seconds or an ISO 8601 time") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()
    t = number(value, name)
    return t / 1000.0 if t > 1e11 else t


def text(value, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError("wrong_type", f"'{name}' must be a string")
    return clean(value[:MAX_TEXT * 4]).strip()[:MAX_TEXT] or None  # no NUL or other controls: both databases store it


def flag(value, name: str) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    raise ProtocolError("wrong_type", f"'{name}' must be true or false")


def checked(fix: Fix, now: float, where: str = "") -> Fix:
    try:
        return check_fix(fix, now)
    except FixError as exc:
        raise ProtocolError(exc.code, f"{where}{exc.message}") from None


# -- OsmAnd ------------------------------------------------------------------------------

def osmand_params(params: Mapping[str, str], now: float | None = None) -> tuple[str | None, Fix]:
    """The device id and fix of an OsmAnd-protocol request's parameters."""
    now = time.time() if now is None else now
    device = params.get("id") or params.get("deviceid")
    lat, lon = params.get("lat"), params.get("lon")
    if (lat is None or lon is None) and params.get("location"):
        lat, _, lon = params["location"].partition(",")
    speed = number(params.get("speed"), "speed")
    fix = Fix(t=timestamp(params.get("timestamp"), "timestamp", now),
              lat=number(lat, "lat", required=True), lon=number(lon, "lon", required=True),
              ele=number(params.get("altitude"), "altitude"), acc=number(params.get("accuracy"), "accuracy"),
              speed_mps=None if speed is None or speed < 0 else speed * KNOTS,
              bearing=number(params.get("bearing") or params.get("heading"), "bearing"),
              battery=number(params.get("batt"), "batt"),
              is_moving=flag(params.get("motion"), "motion"))
    return (device or None), checked(fix, now)


def osmand_json(data, now: float | None = None) -> tuple[str | None, list[Fix]]:
    """The device id and fixes of Traccar Client's JSON body: ``{"location": {...} or [...],
    "device_id": ...}``."""
    now = time.time() if now is None else now
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "the body must be a JSON object with 'location'")
    device = text(data.get("device_id"), "device_id")
    location = data.get("location")
    if location is None:
        raise ProtocolError("missing_field", "'location' is required")
    locations = location if isinstance(location, list) else [location]
    if len(locations) > MAX_POINTS_PER_BATCH:
        raise ProtocolError("batch_too_large", f"at most {MAX_POINTS_PER_BATCH} locations in one request")
    fixes = []
    for k, item in enumerate(locations):
        where = f"location {k}: " if len(locations) > 1 else ""
        try:
            fixes.append(_traccar_location(item, now, where))
        except ProtocolError as exc:
            if not exc.message.startswith(where):
                exc = ProtocolError(exc.code, where + exc.message)
            raise exc from None
        if device is None and isinstance(item, dict):
            device = text(item.get("device_id"), "device_id")
    return device, fixes


def _traccar_location(item, now: float, where: str) -> Fix:
    if not isinstance(item, dict):
        raise ProtocolError("wrong_type", "a location must be an object")
    coords = item.get("coords")
    if not isinstance(coords, dict):
        raise ProtocolError("missing_field", "'coords' with 'latitude' and 'longitude' is required")
    battery = item.get("battery")
    level = number(battery.get("level"), "battery.level") if isinstance(battery, dict) else None
    activity = item.get("activity")
    motion = text(activity.get("type"), "activity.type") if isinstance(activity, dict) else None
    speed = number(coords.get("speed"), "speed")
    heading = number(coords.get("heading"), "heading")
    fix = Fix(t=timestamp(item.get("timestamp"), "timestamp", now),
              lat=number(coords.get("latitude"), "latitude", required=True),
              lon=number(coords.get("longitude"), "longitude", required=True),
              ele=number(coords.get("altitude"), "altitude"), acc=number(coords.get("accuracy"), "accuracy"),
              speed_mps=None if speed is None or speed < 0 else speed,
              bearing=None if heading is None or heading < 0 else heading,
              # Traccar Client reports the battery as a fraction (0.85); a tracker may send percent.
              battery=None if level is None or level < 0 else (level * 100 if level <= 1 else level),
              is_moving=flag(item.get("is_moving"), "is_moving"), motion=motion)
    return checked(fix, now, where)


# -- OwnTracks ---------------------------------------------------------------------------

def owntracks(data, now: float | None = None) -> Fix | None:
    """The fix of an OwnTracks message; None for a message of another ``_type`` (a
    transition, a waypoint, a status report...), which is answered and otherwise ignored."""
    now = time.time() if now is None else now
    if not isinstance(data, dict) or not isinstance(data.get("_type"), str):
        raise ProtocolError("bad_message", "the body must be a JSON object with a string '_type'")
    if data["_type"] != "location":
        return None
    vel = number(data.get("vel"), "vel")
    cog = number(data.get("cog"), "cog")
    motions = data.get("motionactivities")
    motion = text(motions[0], "motionactivities") if isinstance(motions, list) and motions else None
    fix = Fix(t=timestamp(_required(data, "tst"), "tst", now),
              lat=number(data.get("lat"), "lat", required=True), lon=number(data.get("lon"), "lon", required=True),
              ele=number(data.get("alt"), "alt"), acc=number(data.get("acc"), "acc"),
              speed_mps=None if vel is None or vel < 0 else vel * KMH,
              bearing=None if cog is None or cog < 0 else cog,
              battery=number(data.get("batt"), "batt"), motion=motion)
    return checked(fix, now)


def _required(data: dict, name: str):
    if data.get(name) is None:
        raise ProtocolError("missing_field", f"'{name}' is required")
    return data[name]
