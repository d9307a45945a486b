"""The device protocol: JSON messages over one websocket, parsed and validated without I/O.

Every function here is pure, so the protocol can be tested and fuzzed alone. ``parse``
turns raw text into a typed message or raises ``ProtocolError`` with a machine-readable
code and a human message; the ``*_message`` helpers build what the server sends back.
The full description with examples is in docs/protocol.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import orjson

from core.activities.cues import CUE_FIELDS, MAX_EVERY_KM, MAX_EVERY_MIN
from core.activities.lifecycle import TRANSITIONS
from core.activities.tables import SPORTS, VISIBILITIES
from core.text import CLIENT_REF_MAX_CHARS, TITLE_MAX_CHARS, TextRefused, check_identifier, fit

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024
RECOMMENDATION_KINDS = ("routes", "athletes")
MAX_POINTS_PER_BATCH = 1000
MAX_FUTURE_S = 300.0
MAX_SEQ = 2**31 - 1
MIN_TIME_S = 946_684_800.0  # 2000-01-01: older points come from a device with no clock set
COMMANDS = tuple(TRANSITIONS)  # the lifecycle's commands, in its order
RESERVED_CLIENT_REF = "fixes:"  # core.devices names the activities it starts so

# Error codes a client may receive, each with what it means.
ERROR_CODES = {
    "bad_json": "the message is not valid JSON (NaN, Infinity and numbers beyond a double are refused)",
    "bad_message": "the message is not a JSON object with a string 'type'",
    "unknown_type": "the message type is not one this server knows",
    "unsupported_version": "the protocol version is not supported",
    "missing_field": "a required field is absent",
    "wrong_type": "a field has the wrong JSON type",
    "invalid_value": "a field's value is out of its allowed set or range, or too long",
    "invalid_point": "a point is impossible (latitude beyond 90, time far in the future, ...)",
    "batch_too_large": f"a batch holds more than {MAX_POINTS_PER_BATCH} points",
    "message_too_large": f"the message is over {MAX_MESSAGE_BYTES} bytes",
    "rate_limited": "too many messages; slow down and resend",
    "not_found": "no such activity for this device's athlete",
    "invalid_transition": "the status change is not allowed from the current status",
    "activity_closed": "the activity is completed or discarded and takes no more points",
    "internal": "the server failed; resend later (nothing was acknowledged)",
}


class ProtocolError(ValueError):
    """A message the server cannot act on; ``code`` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str, request_id: object = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


@dataclass
class Create:
    id: object
    sport: str
    title: str | None = None
    visibility: str | None = None
    client_ref: str | None = None


@dataclass
class Status:
    id: object
    activity_id: int
    command: str
    at: float | None = None


@dataclass(slots=True)
class Point:
    seq: int
    t: float
    lat: float | None
    lon: float | None
    ele: float | None = None
    acc: float | None = None
    hr: float | None = None
    cad: float | None = None

    def row(self, activity_id: int) -> tuple:
        """The storage row for this point, in ``core.storage.points.POINT_COLUMNS`` order. A plain fix (no
        elevation, accuracy, heart rate or cadence, as most phones send) stops after ``lon``:
        the store inserts those through a statement with five columns, which is cheaper."""
        if self.ele is None and self.acc is None and self.hr is None and self.cad is None:
            return (activity_id, self.seq, self.t, self.lat, self.lon)
        return (activity_id, self.seq, self.t, self.lat, self.lon, self.ele, self.acc, self.hr, self.cad)


@dataclass
class Points:
    id: object
    activity_id: int
    points: list[Point] = field(default_factory=list)


@dataclass
class Feed:
    id: object
    cursor: str | None = None
    limit: int = 20


@dataclass
class Recommendations:
    id: object
    kind: str = "routes"  # or "athletes"
    limit: int = 10


@dataclass
class Cues:
    id: object
    fields: tuple[str, ...]
    every_km: float | None
    every_min: float | None


Message = Create | Status | Points | Feed | Cues | Recommendations


def parse(raw: str | bytes, now: float | None = None) -> Message:
    """Parse and validate one client message."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise ProtocolError("message_too_large", ERROR_CODES["message_too_large"])
    try:
        # orjson refuses NaN, Infinity, numbers that overflow a double and lone surrogates.
        data = orjson.loads(raw)
    except (orjson.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"invalid JSON: {str(exc)[:120]}") from None
    return parse_data(data, now)


def parse_data(data, now: float | None = None) -> Message:
    """Validate one decoded client message (what ``parse`` does after decoding JSON; the
    HTTP API's requests come here with their ``type`` set by the endpoint)."""
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("bad_message", ERROR_CODES["bad_message"])
    request_id = data.get("id")
    if not (request_id is None or isinstance(request_id, str | int) and not isinstance(request_id, bool)):
        raise ProtocolError("wrong_type", "id must be a string or an integer")
    if isinstance(request_id, str) and len(request_id) > 100:
        raise ProtocolError("invalid_value", "id is longer than 100 characters")
    if isinstance(request_id, int) and abs(request_id) > 2**53:
        raise ProtocolError("invalid_value", "id is out of range")
    version = data.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError("unsupported_version", f"protocol version {PROTOCOL_VERSION} is supported",
                            request_id)
    parser = PARSERS.get(data["type"])
    if parser is None:
        raise ProtocolError("unknown_type", f"unknown message type {data['type'][:40]!r}", request_id)
    try:
        return parser(data, request_id, time.time() if now is None else now)
    except ProtocolError as exc:
        exc.request_id = request_id
        raise


def _require(data: dict, name: str):
    if name not in data or data[name] is None:
        raise ProtocolError("missing_field", f"'{name}' is required")
    return data[name]


def _string(data: dict, name: str, required: bool = False, max_len: int = 200) -> str | None:
    value = _require(data, name) if required else data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError("wrong_type", f"'{name}' must be a string")
    if len(value) > max_len:
        raise ProtocolError("invalid_value", f"'{name}' is longer than {max_len} characters")
    return value


def _title(data: dict, name: str) -> str | None:
    # Any length the message size allows is read; what does not fit the column is cut with
    # an ellipsis, as for a name in an uploaded file.
    value = _string(data, name, max_len=MAX_MESSAGE_BYTES)
    return None if value is None else fit(value, TITLE_MAX_CHARS)


def _identifier(data: dict, name: str, limit: int) -> str | None:
    value = _string(data, name, max_len=MAX_MESSAGE_BYTES)
    if value is None:
        return None
    try:
        return check_identifier(value, limit, f"'{name}'")
    except TextRefused as exc:
        raise ProtocolError("invalid_value", str(exc)) from None


def _choice(data: dict, name: str, options: tuple[str, ...], required: bool = True) -> str | None:
    value = _string(data, name, required=required)
    if value is not None and value not in options:
        raise ProtocolError("invalid_value", f"'{name}' must be one of {', '.join(options)}")
    return value


def _integer(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("wrong_type", f"'{name}' must be an integer")
    if not low <= value <= high:
        raise ProtocolError("invalid_value", f"'{name}' must be between {low} and {high}")
    return value


def number(value, name: str, code: str = "wrong_type") -> float | None:
    """A JSON number as a finite float (None when absent); ProtocolError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError("wrong_type", f"'{name}' must be a number")
    try:
        value = float(value)
    except OverflowError:
        raise ProtocolError("invalid_value", f"'{name}' is too large") from None
    if not math.isfinite(value):
        raise ProtocolError("invalid_value", f"'{name}' must be finite")
    return value


def _activity_id(data: dict) -> int:
    return _integer(_require(data, "activity_id"), "activity_id", 1, 2**63 - 1)


def _parse_create(data: dict, request_id, now: float) -> Create:
    client_ref = _identifier(data, "client_ref", CLIENT_REF_MAX_CHARS)
    if client_ref is not None and client_ref.startswith(RESERVED_CLIENT_REF):
        raise ProtocolError("invalid_value", f"'client_ref' may not start with {RESERVED_CLIENT_REF!r}: "
                                             "those name the activities of phone apps' fixes")
    return Create(request_id, sport=_choice(data, "sport", SPORTS),
                  title=_title(data, "title"), visibility=_choice(data, "visibility", VISIBILITIES, False),
                  client_ref=client_ref)


def _parse_status(data: dict, request_id, now: float) -> Status:
    at = number(data.get("at"), "at")
    if at is not None and at > now + MAX_FUTURE_S:
        raise ProtocolError("invalid_value", "'at' is in the future")
    if at is not None and at < MIN_TIME_S:
        raise ProtocolError("invalid_value", "'at' is before the year 2000")
    return Status(request_id, _activity_id(data), _choice(data, "command", COMMANDS), at)


# Optional point fields: name, lowest and highest allowed value, and what to say otherwise.
_POINT_EXTRAS = (
    ("ele", -1000.0, 10000.0, "elevation must be within -1000..10000 m"),
    ("acc", 0.0, math.inf, "accuracy cannot be negative"),
    ("hr", 0.0, 300.0, "heart rate must be within 0..300"),
    ("cad", 0.0, 300.0, "cadence must be within 0..300"),
)


def _parse_point(p, now: float) -> Point:
    # The ingest hot path: one call per GPS point. Values that are already what they
    # should be (an int seq, float coordinates) skip the general checks, which give the
    # same answers; orjson has refused NaN, Infinity and out-of-range numbers already.
    if type(p) is not dict:
        raise ProtocolError("wrong_type", "each point must be an object")
    seq = p.get("seq")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        seq = _integer(_require(p, "seq"), "seq", 0, MAX_SEQ)
    t = p.get("t")
    if type(t) is not float:
        t = number(_require(p, "t"), "t")
    if t > now + MAX_FUTURE_S:
        raise ProtocolError("invalid_point", f"point {seq}: time is in the future")
    if t < MIN_TIME_S:
        raise ProtocolError("invalid_point", f"point {seq}: time is before the year 2000")
    lat, lon = p.get("lat"), p.get("lon")
    if type(lat) is not float:
        lat = number(lat, "lat")
    if type(lon) is not float:
        lon = number(lon, "lon")
    if lat is None or lon is None:
        if lat is not lon:
            raise ProtocolError("invalid_point", f"point {seq}: lat and lon come together")
    elif not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ProtocolError("invalid_point", f"point {seq}: latitude must be within ±90 and longitude ±180")
    if len(p) == 4 and lat is not None:  # seq, t, lat, lon and nothing else: the usual phone fix
        return Point(seq, t, lat, lon)
    extras = []
    for name, low, high, problem in _POINT_EXTRAS:
        value = p.get(name)
        if value is not None:
            value = number(value, name)
            if not low <= value <= high:
                raise ProtocolError("invalid_point", f"point {seq}: {problem}")
        extras.append(value)
    return Point(seq, t, lat, lon, *extras)


def _parse_points(data: dict, request_id, now: float) -> Points:
    activity_id = _activity_id(data)
    raw = _require(data, "points")
    if not isinstance(raw, list):
        raise ProtocolError("wrong_type", "'points' must be a list")
    if len(raw) > MAX_POINTS_PER_BATCH:
        raise ProtocolError("batch_too_large", ERROR_CODES["batch_too_large"])
    return Points(request_id, activity_id, [_parse_point(p, now) for p in raw])


def _parse_feed(data: dict, request_id, now: float) -> Feed:
    limit = data.get("limit", 20)
    return Feed(request_id, cursor=_string(data, "cursor", max_len=200), limit=_integer(limit, "limit", 1, 100))


def _parse_recommendations(data: dict, request_id, now: float) -> Recommendations:
    return Recommendations(request_id, kind=_choice(data, "kind", RECOMMENDATION_KINDS, required=False) or "routes",
                           limit=_integer(data.get("limit", 10), "limit", 1, 50))


def _parse_cues(data: dict, request_id, now: float) -> Cues:
    fields = _require(data, "fields")
    if not isinstance(fields, list) or not all(isinstance(f, str) for f in fields):
        raise ProtocolError("wrong_type", "'fields' must be a list of strings")
    if not set(fields) <= set(CUE_FIELDS):
        raise ProtocolError("invalid_value", f"'fields' may hold {', '.join(CUE_FIELDS)}")
    every_km = number(data.get("every_km"), "every_km")
    every_min = number(data.get("every_min"), "every_min")
    for name, value, high in (("every_km", every_km, MAX_EVERY_KM), ("every_min", every_min, MAX_EVERY_MIN)):
        if value is not None and not 0 < value <= high:
            raise ProtocolError("invalid_value", f"'{name}' must be above 0 and at most {high:g}")
    return Cues(request_id, tuple(fields), every_km, every_min)


PARSERS = {"create": _parse_create, "status": _parse_status, "points": _parse_points,
           "feed": _parse_feed, "cues": _parse_cues, "recommendations": _parse_recommendations}


def dumps(message: dict) -> str:
    """Serialise an outgoing message."""
    return orjson.dumps(message).decode()


def dumps_utf8(message: dict) -> bytes:
    """Serialise an outgoing message as UTF-8, to send as a text frame (``send(..., text=True)``)
    without decoding and encoding it again: every acknowledgement goes this way."""
    return orjson.dumps(message)


def error_message(code: str, message: str, request_id=None) -> dict:
    """An error for the client: a code from ERROR_CODES and a human message."""
    out = {"type": "error", "code": code, "message": message}
    if request_id is not None:
        out["id"] = request_id
    return out


def welcome_message(user: str) -> dict:
    """Sent once after the connection opens."""
    return {"type": "welcome", "v": PROTOCOL_VERSION, "user": user,
            "limits": {"max_message_bytes": MAX_MESSAGE_BYTES, "max_points_per_batch": MAX_POINTS_PER_BATCH}}
