"""Spoken cues: what the athlete chose to hear and how often, and the words."""

from __future__ import annotations

from dataclasses import dataclass

CUE_FIELDS = ("time", "distance", "pace")


@dataclass
class CuePrefs:
    """What the athlete wants to hear, and how often (by distance, by time, or both)."""

    fields: tuple[str, ...] = CUE_FIELDS
    every_km: float | None = 1.0
    every_min: float | None = None

    @classmethod
    def from_settings(cls, settings: dict | None) -> CuePrefs:
        """Read the preferences stored in a user's settings (defaults where absent)."""
        raw = (settings or {}).get("cues") or {}
        fields = tuple(f for f in raw.get("fields", CUE_FIELDS) if f in CUE_FIELDS)
        every_km = raw.get("every_km", 1.0)
        every_min = raw.get("every_min")
        return cls(fields=fields or CUE_FIELDS,
                   every_km=float(every_km) if every_km else None,
                   every_min=float(every_min) if every_min else None)

    def to_settings(self) -> dict:
        """The JSON form stored under a user's settings["cues"]."""
        return {"fields": list(self.fields), "every_km": self.every_km, "every_min": self.every_min}


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


def cue_text(sport: str, prefs: CuePrefs, moving_s: float, distance_m: float, stats: dict,
             lead: str = "distance") -> str:
    """The sentence to speak, e.g. '5 kilometres. Time 27 minutes 10 seconds. Average pace ...'."""
    parts = []
    if "distance" in prefs.fields:
        parts.append(speak_distance(distance_m) if lead == "distance" else f"Distance {speak_distance(distance_m)}")
    if "time" in prefs.fields:
        parts.append(f"Time {speak_duration(moving_s)}")
    if "pace" in prefs.fields:
        avg = stats.get("avg_speed_mps")
        if avg:
            if sport == "ride":
                parts.append(f"Average speed {avg * 3.6:.1f} kilometres per hour")
            else:
                parts.append(f"Average pace {speak_pace(1000.0 / avg)}")
    return ". ".join(parts) + "."
