"""Clean raw GPS points: drop what cannot be trusted, each drop with a reason code.

The cleaner never edits a kept point's time or position. It answers two questions for the
statistics: which points form the GPS path, and which timestamps form the recording's
time axis (records without a position, such as heart-rate-only samples or GPS drop-outs,
still tell us the recording was running).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from core.tracks.geo import distance_m, segment_lengths_m
from core.tracks.track import Track

# Faster than any athlete of the sport over a few seconds: a step beyond this is a glitch.
MAX_SPEED_MPS = {"run": 12.0, "walk": 12.0, "ride": 30.0, "other": 30.0}
MAX_ACCURACY_M = 50.0
FUTURE_TOLERANCE_S = 300.0
# A forward clock jump this long splits the recording; the smaller side is a clock glitch.
CLOCK_JUMP_S = 12 * 3600.0
SPIKE_LOOKAHEAD_POINTS = 10
# A device's first fixes (before it has a lock) and last ones can be wild: at most this many
# at either end, cut off from the rest by an impossible jump, are dropped when the steps
# after them (before them, at the end) are possible for EDGE_STEADY_STEPS in a row.
EDGE_POINTS = 3
EDGE_STEADY_STEPS = 5

REASONS = ("missing_time", "future_time", "backwards_time", "duplicate_time", "time_jump",
           "no_position", "invalid_position", "poor_accuracy", "speed_spike")


@dataclass
class CleanTrack:
    """Points that survived cleaning, the time axis, and why the others were dropped."""

    sport: str
    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    ele: np.ndarray
    hr: np.ndarray
    cad: np.ndarray
    times: np.ndarray  # every trustworthy timestamp, with or without a position
    dropped: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.t.size)


def clean_track(track: Track, now: float | None = None, spikes: bool = True) -> CleanTrack:
    """Drop invalid, duplicate, backwards, future, inaccurate and (unless ``spikes`` is
    False) spiking points."""
    now = time.time() if now is None else now
    n = len(track)
    reasons = Counter()
    alive = np.ones(n, dtype=bool)

    def drop(mask: np.ndarray, reason: str) -> None:
        hit = alive & mask
        count = int(np.count_nonzero(hit))
        if count:
            reasons[reason] += count
            alive[hit] = False

    t = track.t
    drop(~np.isfinite(t), "missing_time")
    drop(np.isfinite(t) & (t > now + FUTURE_TOLERANCE_S), "future_time")
    drop(clock_glitch(t, alive), "time_jump")
    drop(_behind_running_max(t, alive), "backwards_time")
    drop(_repeats_previous(t, alive), "duplicate_time")
    times = t[alive].copy()

    lat, lon = track.lat, track.lon
    drop(~(np.isfinite(lat) & np.isfinite(lon)), "no_position")
    with np.errstate(invalid="ignore"):
        bad = (np.abs(lat) > 90) | (np.abs(lon) > 180) | ((lat == 0) & (lon == 0))
    drop(bad, "invalid_position")
    with np.errstate(invalid="ignore"):
        drop(np.isfinite(track.acc) & (track.acc > MAX_ACCURACY_M), "poor_accuracy")

    idx = np.flatnonzero(alive)
    vmax = MAX_SPEED_MPS.get(track.sport, MAX_SPEED_MPS["other"])
    found = _find_spikes(t[idx], lat[idx], lon[idx], vmax) if spikes else np.zeros(0, dtype=int)
    if found.size:
        reasons["speed_spike"] += int(found.size)
        alive[idx[found]] = False
        idx = np.flatnonzero(alive)

    return CleanTrack(
        sport=track.sport, t=t[idx].copy(), lat=lat[idx].copy(), lon=lon[idx].copy(),
        ele=track.ele[idx].copy(), hr=track.hr[idx].copy(), cad=track.cad[idx].copy(),
        times=times, dropped=dict(reasons),
    )


def _behind_running_max(t: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Points whose time is earlier than a point recorded before them."""
    values = np.where(alive, t, -np.inf)
    running = np.maximum.accumulate(values)
    previous = np.concatenate([[-np.inf], running[:-1]])
    return alive & (values < previous)


def _repeats_previous(t: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Points with the same timestamp as the kept point before them."""
    out = np.zeros(t.size, dtype=bool)
    idx = np.flatnonzero(alive)
    if idx.size > 1:
        same = np.diff(t[idx]) == 0
        out[idx[1:][same]] = True
    return out


def clock_glitch(t: np.ndarray, alive: np.ndarray) -> np.ndarray:
    """Points whose clock sits more than CLOCK_JUMP_S away from most of the recording.

    Sorting the times and splitting at jumps longer than CLOCK_JUMP_S leaves one cluster
    holding most points: that is the activity, wherever in the file the glitch sits.
    """
    out = np.zeros(t.size, dtype=bool)
    idx = np.flatnonzero(alive)
    if idx.size < 2:
        return out
    order = idx[np.argsort(t[idx], kind="stable")]
    cuts = np.flatnonzero(np.diff(t[order]) > CLOCK_JUMP_S) + 1
    if cuts.size == 0:
        return out
    pieces = np.split(order, cuts)
    biggest = max(range(len(pieces)), key=lambda k: pieces[k].size)
    for k, piece in enumerate(pieces):
        if k != biggest:
            out[piece] = True
    return out


def _find_spikes(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, vmax: float) -> np.ndarray:
    """Positions of points that jump out faster than vmax and come back, and of wild fixes
    at either end.

    A stretch that leaves faster than the sport allows is dropped only when a point within
    the next SPIKE_LOOKAHEAD_POINTS can be reached from the last good point at a possible
    speed. A sustained fast stretch (a car ride logged as a run) is kept, so the anomaly
    detector still sees it. The first and last points have no good point before (after)
    them to be judged from: up to EDGE_POINTS there, behind an impossible jump from a
    steady track, are dropped (``_edges``).
    """
    n = t.size
    if n < 3:
        return np.zeros(0, dtype=int)
    steps = segment_lengths_m(lat, lon)
    dts = np.diff(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        fast = steps > vmax * dts
    if not fast.any():
        return np.zeros(0, dtype=int)
    lead, tail = _edges(t, lat, lon, vmax, fast)
    spikes: list[int] = [*range(lead), *range(n - tail, n)]
    n -= tail
    last = lead
    i = lead + 1
    while i < n:
        if last == i - 1:
            too_fast = bool(fast[i - 1])
        else:
            too_fast = distance_m(lat[last], lon[last], lat[i], lon[i]) > vmax * (t[i] - t[last])
        if too_fast:
            for j in range(i + 1, min(n, i + SPIKE_LOOKAHEAD_POINTS)):
                if distance_m(lat[last], lon[last], lat[j], lon[j]) <= vmax * (t[j] - t[last]):
                    spikes.extend(range(i, j))
                    last, i = j, j + 1
                    break
            else:
                last, i = i, i + 1
            continue
        last, i = i, i + 1
    return np.asarray(sorted(spikes), dtype=int)


def _edges(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, vmax: float, fast: np.ndarray) -> tuple[int, int]:
    """How many wild fixes to drop at the start and at the end: the fewest (at most
    EDGE_POINTS) after which (before which, at the end) an impossible step leads to a steady
    track (of the EDGE_STEADY_STEPS points beyond the first point kept, all but one, a spike
    of its own, within reach of it), the end point itself out of reach of the first (last)
    point kept. A good first point before a spike is reachable: the spike alone is dropped,
    by ``_find_spikes``. ``fast[k]``: the step from point k to k+1 is impossible."""
    steps = fast.size

    def cut_off(a: int, b: int) -> bool:
        return distance_m(lat[a], lon[a], lat[b], lon[b]) > vmax * abs(t[b] - t[a])

    def steady(kept: int, beyond: range) -> bool:
        return sum(cut_off(kept, j) for j in beyond) <= 1

    lead = tail = 0
    for m in range(1, EDGE_POINTS + 1):
        if m + EDGE_STEADY_STEPS <= steps and fast[m - 1] and cut_off(0, m) \
                and steady(m, range(m + 1, m + EDGE_STEADY_STEPS + 1)):
            lead = m
            break
    last = steps  # the index of the last point
    for m in range(1, EDGE_POINTS + 1):
        k = steps - m  # the step into the last m points
        if k - EDGE_STEADY_STEPS >= lead and fast[k] and cut_off(last, k) \
                and steady(k, range(k - EDGE_STEADY_STEPS, k)):
            tail = m
            break
    return lead, tail

