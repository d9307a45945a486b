"""Live statistics during an activity, updated point by point, and the spoken cues each point
makes due (their words are ``core.activities.cues``'s).

Pauses are time intervals (the device's clock, as the lifecycle events record them), not a
switch: a point whose time falls inside one adds neither time nor distance, and time paused
between two points is not moving time, whichever order the pause and the points arrive in
(an offline device syncs its commands before its points). So the live figures, the ones a
device computes offline, and the ones rebuilt from storage (``replay_live``) agree.

Used by the ingest server after each acknowledged batch and by the device client while it
is offline, so the athlete hears the same cues either way. Each point costs O(1): nothing
rescans the track. The authoritative numbers come later, from the stored track at
completion (core.tracks.stats); these are the running estimate.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from math import floor, inf

from core.activities.cues import CuePrefs, cue_text
from core.activities.tables import HALTED_STATUSES
from core.tracks.cleaning import MAX_SPEED_MPS
from core.tracks.geo import distance_m
from core.tracks.stats import PAUSE_GAP_S, THIN_DISTANCE_M, THIN_TIME_S

CURRENT_PACE_WINDOW_S = 30.0
MIN_PACE_SPEED_MPS = 0.3  # slower than this is standing still: no pace


@dataclass(slots=True)
class LiveStats:
    """Running distance, times and pace of one activity, fed point by point."""

    sport: str
    prefs: CuePrefs = field(default_factory=CuePrefs)
    first_t: float | None = None
    last_t: float | None = None
    anchor: tuple[float, float, float] | None = None  # t, lat, lon of the last counted fix
    distance_m: float = 0.0
    moving_s: float = 0.0
    pauses: list = field(default_factory=list)  # [start, end] in time order; end is inf while paused
    _window: deque = field(default_factory=deque)
    _next_km: float | None = None
    _next_min: float | None = None
    _pending: list = field(default_factory=list)
    _vmax: float = field(init=False, repr=False, default=0.0)  # the sport's speed limit: faster is a spike

    def __post_init__(self) -> None:
        self._next_km = self.prefs.every_km
        self._next_min = self.prefs.every_min
        self._vmax = MAX_SPEED_MPS.get(self.sport, MAX_SPEED_MPS["other"])

    @property
    def paused(self) -> bool:
        """Whether the athlete is paused now (the last pause is still open)."""
        return bool(self.pauses) and self.pauses[-1][1] == inf

    def add(self, t: float, lat: float | None, lon: float | None) -> None:
        """Take one point; points older than the last one are left to the final summary."""
        last_t = self.last_t
        if last_t is None:
            self.first_t = t
        elif t <= last_t:
            return
        before_moving, before_distance = self.moving_s, self.distance_m
        inside, overlap = self._paused_between(last_t, t) if self.pauses else (False, 0.0)
        # Time not explained by an explicit pause counts as moving unless the gap is long
        # enough to be a pause of its own (the device stopped logging).
        if last_t is not None and t - last_t - overlap <= PAUSE_GAP_S:
            self.moving_s += t - last_t - overlap
        self.last_t = t
        if inside or overlap:
            self.anchor = None  # no distance across a pause
        if not inside:
            self._advance(t, lat, lon)
        # Most points cross no cue mark: one comparison each says so.
        next_km, next_min = self._next_km, self._next_min
        if (next_km and self.distance_m >= next_km * 1000) or (next_min and self.moving_s >= next_min * 60):
            self._schedule_cues(before_moving, before_distance)

    def _paused_between(self, a: float | None, b: float) -> tuple[bool, float]:
        """Whether time ``b`` falls inside a pause, and how much paused time lies between ``a`` and ``b``."""
        inside, overlap = False, 0.0
        for start, end in reversed(self.pauses):
            if a is not None and end <= a:
                break
            if start < b < end:
                inside = True
            if a is not None:
                lo, hi = max(start, a), min(end, b)
                if hi > lo:
                    overlap += hi - lo
        return inside, overlap

    def _advance(self, t: float, lat: float | None, lon: float | None) -> None:
        if lat is None or lon is None:
            return
        anchor = self.anchor
        if anchor is None:
            self.anchor = (t, lat, lon)
            self._window.append((t, self.distance_m))
            return
        at, alat, alon = anchor
        step = distance_m(alat, alon, lat, lon)
        dt = t - at
        if dt > 0 and step > self._vmax * dt:
            return  # a spike: wait for the fix to come back
        if dt > PAUSE_GAP_S:
            self.anchor = (t, lat, lon)
            return
        if step >= THIN_DISTANCE_M or dt >= THIN_TIME_S:
            self.distance_m += step
            self.anchor = (t, lat, lon)
            window = self._window
            window.append((t, self.distance_m))
            while len(window) > 2 and t - window[0][0] > CURRENT_PACE_WINDOW_S:
                window.popleft()

    def _schedule_cues(self, before_moving: float, before_distance: float) -> None:
        """Queue the cues whose mark this point crossed, with values at the mark itself."""
        gained_d = self.distance_m - before_distance
        gained_t = self.moving_s - before_moving
        while self._next_km and self.distance_m >= self._next_km * 1000:
            mark_m = self._next_km * 1000
            share = (mark_m - before_distance) / gained_d if gained_d > 0 else 1.0
            self._pending.append(self._cue(before_moving + share * gained_t, mark_m, "distance"))
            self._next_km += self.prefs.every_km
        while self._next_min and self.moving_s >= self._next_min * 60:
            mark_s = self._next_min * 60
            share = (mark_s - before_moving) / gained_t if gained_t > 0 else 1.0
            self._pending.append(self._cue(mark_s, before_distance + share * gained_d, "time"))
            self._next_min += self.prefs.every_min

    def _cue(self, moving_s: float, distance_m: float, lead: str) -> str:
        speed = distance_m / moving_s if moving_s > 0 else None
        return cue_text(self.sport, self.prefs, moving_s, distance_m, {"avg_speed_mps": speed}, lead=lead)

    def to_state(self) -> dict:
        """What a device saves to resume these stats after a restart."""
        return {"sport": self.sport, "prefs": self.prefs.to_settings(), "first_t": self.first_t,
                "last_t": self.last_t, "anchor": self.anchor, "distance_m": self.distance_m,
                "moving_s": self.moving_s, "pauses": [[a, None if b == inf else b] for a, b in self.pauses],
                "next_km": self._next_km,
                "next_min": self._next_min, "window": list(self._window)}

    @classmethod
    def from_state(cls, state: dict) -> LiveStats:
        """Stats restored from ``to_state``."""
        live = cls(state["sport"], CuePrefs.from_settings({"cues": state["prefs"]}))
        live.first_t, live.last_t = state["first_t"], state["last_t"]
        live.anchor = tuple(state["anchor"]) if state["anchor"] else None
        live.distance_m, live.moving_s = state["distance_m"], state["moving_s"]
        if "pauses" in state:
            live.pauses = [[a, inf if b is None else b] for a, b in state["pauses"]]
        elif state.get("paused"):  # saved before pauses were intervals
            live.pauses = [[live.last_t if live.last_t is not None else -inf, inf]]
        live._next_km, live._next_min = state["next_km"], state["next_min"]
        live._window = deque(tuple(w) for w in state["window"])
        return live

    def pause(self, at: float | None = None) -> None:
        """The athlete paused at ``at`` (the device's clock; by default just after the last point)."""
        if self.paused:
            return
        start = at if at is not None else (self.last_t if self.last_t is not None else -inf)
        self.pauses.append([start, inf])

    def resume(self, at: float | None = None) -> None:
        """The athlete resumed at ``at`` (by default just after the last point)."""
        if not self.paused:
            return
        end = at if at is not None else (self.last_t if self.last_t is not None else -inf)
        self.pauses[-1][1] = max(end, self.pauses[-1][0])

    def follow_status(self, status: str, at: float | None = None) -> None:
        """Follow the activity's new status: a halted one pauses the stats, an active one
        resumes them (the same rule ``summary.pause_intervals`` reads from stored events)."""
        if status in HALTED_STATUSES:
            self.pause(at)
        elif status == "active":
            self.resume(at)

    def snapshot(self) -> dict:
        """The numbers a device shows and speaks now (sent with every acknowledgement)."""
        current_speed = None
        window = self._window
        if len(window) >= 2:
            t0, d0 = window[0]
            t1, d1 = window[-1]
            if t1 > t0:
                current_speed = (d1 - d0) / (t1 - t0)
        moving, distance, first_t = self.moving_s, self.distance_m, self.first_t
        avg_speed = distance / moving if moving > 0 else None
        # Sent with every acknowledgement, so rounded with floor (half up; every value here
        # is at least 0), a third of the cost of round(); paces inline (none when standing).
        return {
            "elapsed_s": 0.0 if first_t is None else floor((self.last_t - first_t) * 10.0 + 0.5) / 10.0,
            "moving_s": floor(moving * 10.0 + 0.5) / 10.0,
            "distance_m": floor(distance * 10.0 + 0.5) / 10.0,
            "current_speed_mps": None if current_speed is None else floor(current_speed * 100.0 + 0.5) / 100.0,
            "avg_speed_mps": None if avg_speed is None else floor(avg_speed * 100.0 + 0.5) / 100.0,
            "current_pace_s_per_km": floor(10_000.0 / current_speed + 0.5) / 10.0
            if current_speed is not None and current_speed > MIN_PACE_SPEED_MPS else None,
            "avg_pace_s_per_km": floor(10_000.0 / avg_speed + 0.5) / 10.0
            if avg_speed is not None and avg_speed > MIN_PACE_SPEED_MPS else None,
        }

    def due_cues(self) -> list[str]:
        """Cue sentences that became due since the last call."""
        cues, self._pending = self._pending, []
        return cues


def replay_live(sport: str, points, pauses: list[tuple[float, float]], prefs: CuePrefs | None = None) -> LiveStats:
    """Live stats rebuilt from stored points (t, lat, lon in time order) and the activity's
    pause intervals: what the ingest server had before a restart or a reconnect to another
    process, and what the dashboard shows without Redis."""
    live = LiveStats(sport, prefs or CuePrefs())
    live.pauses = [[start, end] for start, end in pauses]
    for t, lat, lon in points:
        live.add(t, None if lat is None or lat != lat else lat, None if lon is None or lon != lon else lon)
    return live
