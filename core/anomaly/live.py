"""The live check: while an activity records, notice a sustained vehicle-speed stretch and
suggest the athlete pause (the car ride home should not become part of the run).

Incremental and cheap: each fix updates a 30-second window of distance; a warning needs the
window speed above the sport's limit for the same hold time the rules use, so one GPS spike
(which inflates a window for at most 30 s) never triggers it. One warning per stretch: it
re-arms once the speed has dropped well below the limit.
"""

from __future__ import annotations

import bisect
import math
from collections import deque

from core.anomaly.limits import (
    RIDE_LEVEL_MAX_DESCENT,
    RIDE_LEVEL_SPEED_MPS,
    RIDE_LEVEL_SPEED_S,
    RUN_SUSTAINED_MPS,
    RUN_SUSTAINED_S,
)
from core.tracks.cleaning import MAX_SPEED_MPS
from core.tracks.geo import distance_m

WINDOW_S = 30.0
REARM_FACTOR = 0.7
# A jump faster than this many times the sport's glitch limit is a GPS error, not travel.
JUMP_FACTOR = 3.0
LIMITS = {"run": (RUN_SUSTAINED_MPS, RUN_SUSTAINED_S), "ride": (RIDE_LEVEL_SPEED_MPS, RIDE_LEVEL_SPEED_S)}


class VehicleWatch:
    """Feed it fixes in time order; ``add`` returns a warning once per vehicle stretch."""

    def __init__(self, sport: str):
        self.sport = sport if sport in LIMITS else "ride"
        self.limit_mps, self.hold_s = LIMITS[self.sport]
        self.jump_mps = JUMP_FACTOR * MAX_SPEED_MPS[self.sport]
        self.window: deque = deque()  # (t, cumulative metres, elevation)
        self.metres = 0.0
        self.last = None  # (t, lat, lon)
        self.fast_since: tuple[float, float, float | None] | None = None  # (t, metres, ele)
        self.warned = False

    def add(self, t: float, lat: float | None, lon: float | None, ele: float | None = None) -> dict | None:
        if lat is None or lon is None:
            return None
        if self.last is not None:
            t0, lat0, lon0 = self.last
            if t <= t0:
                return None  # late or repeated fix: the window only moves forward
            step = distance_m(lat0, lon0, lat, lon)
            if step <= self.jump_mps * (t - t0):
                self.metres += step
        self.last = (t, lat, lon)
        self.window.append((t, self.metres, ele))
        while self.window and self.window[0][0] < t - WINDOW_S:
            self.window.popleft()
        span = t - self.window[0][0]
        if span < WINDOW_S * 0.6:
            return None
        speed = (self.metres - self.window[0][1]) / span
        if speed < self.limit_mps:
            self.fast_since = None
            if speed < self.limit_mps * REARM_FACTOR:
                self.warned = False
            return None
        if self.fast_since is None:  # held from here, as the rules count 30 s speeds
            self.fast_since = self.window[-1]
        since_t, since_m, since_ele = self.fast_since
        if self.warned or t - since_t < self.hold_s:
            return None
        metres = self.metres - since_m
        if self.sport == "ride" and ele is not None and since_ele is not None and metres > 0 \
                and (since_ele - ele) / metres > RIDE_LEVEL_MAX_DESCENT:
            return None  # a long fast descent: riders do that
        self.warned = True
        kmh = metres / (t - since_t) * 3.6
        activity = "running" if self.sport == "run" else "riding"
        return {
            "since": since_t, "metres": round(metres, 1), "speed_kmh": round(kmh, 1),
            "reason": f"{metres / 1000:.1f} km at {kmh:.0f} km/h for {int(t - since_t)} s",
            "text": f"You are moving at {kmh:.0f} kilometres per hour, faster than {activity}. "
                    f"If you are in a vehicle, pause the activity.",
        }


def replay_watch(sport: str, points, pauses: list[tuple[float, float]]) -> VehicleWatch:
    """A watch rebuilt from stored points ((t, lat, lon) or (t, lat, lon, ele), in time order)
    and pause intervals, as after a reconnect to another ingest process: the fixes since the
    last resume, over the last hold time and two windows, so that a stretch already warned about (by whichever
    process saw it) is not warned about again, and one under way keeps its start."""
    watch = VehicleWatch(sport)
    since = max((end for _, end in pauses), default=-math.inf)  # a pause starts the watch afresh
    if since == math.inf or not points:
        return watch
    since = max(since, points[-1][0] - watch.hold_s - 2 * WINDOW_S)
    for p in points[bisect.bisect_left(points, since, key=lambda p: p[0]):]:
        t, lat, lon = p[0], p[1], p[2]
        if lat == lat and lon == lon:  # NaN: a fix without a position
            watch.add(t, lat, lon, p[3] if len(p) > 3 else None)
    return watch
