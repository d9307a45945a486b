"""Units and formatting, one place for every page: km and min/km for runs, km/h for rides
(miles, min/mi and mph for athletes who chose imperial units)."""

from __future__ import annotations

from datetime import UTC, datetime

MILE_M = 1609.344
UNITS = ("metric", "imperial")
SPORT_ICON = {"run": ":material/directions_run:", "ride": ":material/directions_bike:"}


def distance(metres: float | None, units: str = "metric", digits: int = 2) -> str:
    if metres is None:
        return "–"
    if units == "imperial":
        return f"{metres / MILE_M:.{digits}f} mi"
    return f"{metres / 1000:.{digits}f} km"


def duration(seconds: float | None) -> str:
    """1:05:03 or 27:10."""
    if seconds is None:
        return "–"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def pace(speed_mps: float | None, units: str = "metric") -> str:
    """Minutes per km (or mile), e.g. 5:26 /km."""
    if not speed_mps or speed_mps <= 0.3:
        return "–"
    unit_m, label = (MILE_M, "/mi") if units == "imperial" else (1000.0, "/km")
    seconds = unit_m / speed_mps
    minutes, secs = divmod(int(round(seconds)), 60)
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


def pace_value(sport: str, speed_mps: float, units: str = "metric") -> float | None:
    """The number a chart plots: minutes per km/mile for runs, km/h or mph for rides."""
    unit_m = MILE_M if units == "imperial" else 1000.0
    if sport == "run":
        return unit_m / speed_mps / 60 if speed_mps and speed_mps > 0.3 else None
    return speed_mps * 3600 / unit_m


def pace_axis(sport: str, units: str = "metric") -> str:
    unit = "mi" if units == "imperial" else "km"
    if sport == "run":
        return f"pace (min/{unit})"
    return "speed (mph)" if units == "imperial" else "speed (km/h)"


def when(dt: datetime | None) -> str:
    if dt is None:
        return "–"
    return dt.astimezone(UTC).strftime("%a %d %b %Y, %H:%M UTC")


def elevation(metres: float | None, units: str = "metric") -> str:
    if metres is None:
        return "–"
    return f"{metres * 3.28084:.0f} ft" if units == "imperial" else f"{metres:.0f} m"
