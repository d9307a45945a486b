"""The held-out ``climb_motor`` kind: a ride's biggest climb covered with a motor's help."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import numpy as np

from core.anomaly.heldout_cheats.resampling import (
    ar_noise,
    interp_finite,
    new_rows,
    recorded,
    smooth_wobble,
    splice,
    whole,
)
from core.anomaly.heldout_cheats.source import KMH, Source, moving_time
from core.tracks.track import Track

GRAVITY = 9.81
AIR_DENSITY = 1.2


@dataclass
class _Climb:
    start: float  # route distance (m)
    end: float
    grid: np.ndarray  # route distances every CLIMB_GRID_M
    ele: np.ndarray  # smoothed elevation on the grid


CLIMB_GRID_M = 20.0
CLIMB_DROP_M = 15.0


def _steepest_climb(src: Source) -> _Climb | None:
    """The stretch gaining most metres at over 3% average grade over at least 1 km, never
    dropping more than CLIMB_DROP_M below its highest point so far (one sustained climb)."""
    tr, fix = src.track, src.fix
    ele = tr.ele[fix]
    if np.isfinite(ele).mean() < 0.8 or src.length < 1000.0:
        return None
    grid = np.arange(0.0, src.length, CLIMB_GRID_M)
    smooth = _running(_running(interp_finite(grid, src.s[fix], ele), 9, np.median), 11, np.mean)
    lows = np.flatnonzero((smooth <= np.roll(smooth, 1)) & (smooth <= np.roll(smooth, -1)))
    min_cells = int(1000.0 / CLIMB_GRID_M)
    best = (0.0, -1, -1)
    for i in lows:
        ahead = smooth[i:]
        if ahead.size <= min_cells:
            break
        fell = np.flatnonzero(np.maximum.accumulate(ahead) - ahead > CLIMB_DROP_M)
        ahead = ahead[: fell[0]] if fell.size else ahead
        gain = ahead[min_cells:] - ahead[0]
        if gain.size == 0:
            continue
        run = (np.arange(gain.size) + min_cells) * CLIMB_GRID_M
        score = np.where(gain / run > 0.03, gain, -np.inf)
        k = int(np.argmax(score))
        if score[k] > best[0]:
            best = (float(score[k]), int(i), int(i + min_cells + k))
    if best[1] < 0:
        return None
    return _Climb(start=float(grid[best[1]]), end=float(grid[best[2]]), grid=grid, ele=smooth)


def _running(values: np.ndarray, width: int, reduce) -> np.ndarray:
    """``reduce`` over a centred window of ``width`` samples, the ends padded with their own values."""
    half = width // 2
    padded = np.concatenate([np.full(half, values[0]), values, np.full(half, values[-1])])
    windows = np.lib.stride_tricks.sliding_window_view(padded, width)
    return reduce(windows, axis=1)


def _power(v: np.ndarray, grade: np.ndarray, mass: float, cda: float, crr: float) -> np.ndarray:
    """Power (W) at the wheel to hold ``v`` (m/s) on ``grade``."""
    theta = np.arctan(grade)
    return (mass * GRAVITY * (np.sin(theta) + crr * np.cos(theta)) + 0.5 * AIR_DENSITY * cda * v * v) * v


def _speed_for(power: float, grade: np.ndarray, mass: float, cda: float, crr: float) -> np.ndarray:
    lo = np.full(grade.size, 0.5)
    hi = np.full(grade.size, 40.0)
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        above = _power(mid, grade, mass, cda, crr) > power
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    return 0.5 * (lo + hi)


def climb_motor(src: Source, rng: random.Random) -> Track | None:
    tr = src.track
    if tr.sport != "ride":
        return None
    climb = _steepest_climb(src)
    if climb is None:
        return None
    i0 = src.fix_at_or_before(climb.start)
    j1 = src.fix_at_or_after(climb.end)
    if j1 is None or j1 <= i0 + 1:
        return None
    length = float(src.s[j1] - src.s[i0])
    took = moving_time(src, i0, j1)
    if took <= 0:
        return None
    cells = max(2, math.ceil(length / CLIMB_GRID_M))
    edges = np.linspace(0.0, length, cells + 1)
    heights = np.interp(src.s[i0] + edges, climb.grid, climb.ele)
    grade = np.diff(heights) / np.diff(edges)
    avg = (heights[-1] - heights[0]) / length

    def steady() -> np.ndarray:
        v = rng.uniform(15.0, 30.0) * KMH
        shape = np.clip(1.0 - 2.0 * (grade - avg), 0.8, 1.2)
        return v * shape * (1 + 0.04 * smooth_wobble(src.gen, grade.size))

    def motor() -> np.ndarray:
        mass, cda, crr = rng.uniform(78.0, 95.0), rng.uniform(0.30, 0.40), rng.uniform(0.004, 0.006)
        own = float(_power(np.array([length / took]), np.array([avg]), mass, cda, crr)[0])
        own = float(np.clip(own, 80.0, 400.0))
        return np.minimum(_speed_for(own + rng.uniform(250.0, 400.0), grade, mass, cda, crr), 55.0 * KMH)

    plans = [steady, motor] if rng.random() < 0.5 else [motor, steady]
    for plan in plans:
        speed = plan()
        times = np.concatenate([[0.0], np.cumsum(np.diff(edges) / speed)])
        count = max(1, math.ceil(times[-1] / src.dt - 1e-9))
        if took - count * src.dt < 90.0:
            continue
        rel = np.arange(1, count) * src.dt
        dist = np.interp(rel, times, edges)
        jitter = ar_noise(src.gen, rel.size, src.dt, rng.uniform(15.0, 40.0)) * 0.5 * src.sigma
        mid = new_rows(src, i0, rel, dist, jitter)
        where = src.s[i0] + dist
        if recorded(tr.hr):
            relief = rng.uniform(0.0, 12.0) * np.minimum(1.0, rel / 60.0)
            mid["hr"] = whole(interp_finite(where, src.s, tr.hr) - relief)
        if recorded(tr.cad):
            mid["cad"] = whole(interp_finite(where, src.s, tr.cad))
        if recorded(tr.acc):
            mid["acc"] = interp_finite(where, src.s, tr.acc)
        return splice(tr, i0, mid, j1, tr.t[i0] + count * src.dt)
    return None
