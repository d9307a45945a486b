"""Spoken cues: what the athlete chose to hear and how often, and the words."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.accounts.users import update_profile
from core.units import speak_distance, speak_duration, speak_pace

CUE_FIELDS = ("time", "distance", "pace")

MAX_EVERY_KM = 100.0  # the longest distance between two cues
MAX_EVERY_MIN = 600.0  # the longest time between two cues


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


def save_cue_prefs(s: Session, user: User, prefs: CuePrefs) -> None:
    """Store ``prefs`` as the athlete's cue preferences (their other settings are kept)."""
    update_profile(s, user, cues=prefs.to_settings())


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
