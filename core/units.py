"""Units and formatting, the one place for every page, command and spoken cue: km and min/km
for runs, km/h for rides (miles, min/mi and mph for athletes who chose imperial units), and
the same figures as words for the cues a device speaks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo

MILE_M = 1609.344
FEET_PER_M = 3.28084
UNITS = ("metric", "imperial")


def distance(metres: float | None, units: str = "metric", digits: int = 2) -> str:
    if metres is None:
        return "–"
    if units == "imperial":
        return f"{metres / MILE_M:.{digits}f} mi"
    return f"{metres / 1000:.{digits}f} km"


def unit_length_m(units: str = "metric") -> float:
    """Metres in one unit of distance: a kilometre, or a mile for imperial units."""
    return MILE_M if units == "imperial" else 1000.0


def distance_unit(units: str = "metric") -> str:
    """The unit of distance as a page writes it: km, or mi for imperial units."""
    return "mi" if units == "imperial" else "km"


def elevation_unit(units: str = "metric") -> str:
    """The unit of elevation as a page writes it: m, or ft for imperial units."""
    return "ft" if units == "imperial" else "m"


def effort_name(metres: float) -> str:
    """A best effort's distance as pages and reasons name it: 400 m, 1 km, 5 km, 10 km."""
    return f"{metres:g} m" if metres < 1000 else f"{metres / 1000:g} km"


def duration(seconds: float | None) -> str:
    """1:05:03 or 27:10."""
    if seconds is None:
        return "–"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def duration_short(seconds: float | None) -> str:
    """A span as words read in a sentence: 45 s, 6 min 30 s, 25 min, 1 h 5 min (seconds
    shown only under ten minutes)."""
    if seconds is None:
        return "–"
    total = int(round(seconds))
    if total < 60:
        return f"{total} s"
    if total < 600:
        minutes, secs = divmod(total, 60)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(int(round(total / 60)), 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def pace(speed_mps: float | None, units: str = "metric") -> str:
    """Minutes per km (or mile), e.g. 5:26 /km."""
    if not speed_mps or speed_mps <= 0.3:
        return "–"
    label = "/mi" if units == "imperial" else "/km"
    minutes, secs = divmod(int(round(unit_length_m(units) / speed_mps)), 60)
    return f"{minutes}:{secs:02d} {label}"


def speed(speed_mps: float | None, units: str = "metric") -> str:
    if not speed_mps:
        return "–"
    if units == "imperial":
        return f"{speed_mps * 3600 / MILE_M:.1f} mph"
    return f"{speed_mps * 3.6:.1f} km/h"


def pace_or_speed(sport: str, speed_mps: float | None, units: str = "metric") -> str:
    """Pace for runs, speed for rides."""
    return pace(speed_mps, units) if sport == "run" else speed(speed_mps, units)


def pace_or_speed_word(sport: str) -> str:
    """What ``pace_or_speed`` gives for the sport: "pace" for runs, "speed" for rides."""
    return "pace" if sport == "run" else "speed"


def speed_value(speed_mps, units: str = "metric"):
    """Speed (a number or an array of m/s) in km/h, or mph for imperial units, as ``speed``
    writes it."""
    return speed_mps * 3600 / MILE_M if units == "imperial" else speed_mps * 3.6


def pace_value(sport: str, speed_mps: float, units: str = "metric") -> float | None:
    """The number a chart plots: minutes per km/mile for runs, km/h or mph for rides."""
    unit_m = unit_length_m(units)
    if sport == "run":
        return unit_m / speed_mps / 60 if speed_mps and speed_mps > 0.3 else None
    return speed_mps * 3600 / unit_m


def pace_axis(sport: str, units: str = "metric") -> str:
    unit = "mi" if units == "imperial" else "km"
    if sport == "run":
        return f"pace (min/{unit})"
    return "speed (mph)" if units == "imperial" else "speed (km/h)"


def when(dt: datetime | None, zone: tzinfo = UTC) -> str:
    """A moment as a clock in ``zone`` shows it, with the zone's abbreviation for that date
    ("Sun 06 Apr 2025, 07:30 AEST"); a naive time is storage's UTC."""
    if dt is None:
        return "–"
    local = (dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)).astimezone(zone)
    return f"{local:%a %d %b %Y, %H:%M} {local.tzname() or 'UTC'}"


def elevation_value(metres, units: str = "metric"):
    """Elevation (a number or an array of metres) in feet for imperial units, else metres."""
    return metres * FEET_PER_M if units == "imperial" else metres


def elevation(metres: float | None, units: str = "metric") -> str:
    if metres is None:
        return "–"
    return f"{elevation_value(metres, units):.0f} ft" if units == "imperial" else f"{metres:.0f} m"


def file_size(n: int | None) -> str:
    """A number of bytes as people read it: "3.2 MB", "12.0 kB", "512 B"."""
    n = n or 0
    for unit, step in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= step:
            return f"{n / step:.1f} {unit}"
    return f"{n} B"


def json_safe(value):
    """``value`` with every NaN or infinity (in nested dicts and lists too) as None, so it is
    valid JSON for the database and for the command line."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        value = value.tolist()  # a numpy number or array: Python's, which JSON takes
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


# Spoken: the words a device's voice cue says.

def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def speak_duration(seconds: float) -> str:
    """'1 hour 5 minutes 3 seconds' style."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(_plural(hours, "hour"))
    if minutes or hours:
        parts.append(_plural(minutes, "minute"))
    parts.append(_plural(secs, "second"))
    return " ".join(parts)


def speak_distance(metres: float) -> str:
    """'5 kilometres' for whole kilometres, '3.4 kilometres' otherwise."""
    km = metres / 1000.0
    if abs(km - round(km)) < 0.005:
        return _plural(int(round(km)), "kilometre")
    return f"{km:.1f} kilometres"


def speak_pace(seconds_per_km: float) -> str:
    """'5 minutes 26 per kilometre'."""
    minutes, secs = divmod(int(round(seconds_per_km)), 60)
    return f"{_plural(minutes, 'minute')} {secs:02d} per kilometre" if secs else \
        f"{_plural(minutes, 'minute')} per kilometre"


def climb_rate(metres_per_hour: float | None, units: str = "metric") -> str:
    """An ascent rate in words: 2,340 m per hour (7,677 ft per hour)."""
    if metres_per_hour is None:
        return "–"
    unit = "ft" if units == "imperial" else "m"
    return f"{elevation_value(metres_per_hour, units):,.0f} {unit} per hour"
