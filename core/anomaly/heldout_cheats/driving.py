"""Held-out kinds driven by a car: ``vehicle`` (a stretch of the route at road speeds, in
legs split by junction stops) and ``traffic`` (stop-and-go town traffic inside a ride)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
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
from core.anomaly.heldout_cheats.source import KMH, Source
from core.tracks.geo import segment_lengths_m
from core.tracks.track import Track

# Fine time step of the speed profiles, in seconds.
STEP_S = 0.1


def _leg(gen: np.random.Generator, length: float, cruise: float, accel: float, brake: float,
         wobble: float) -> np.ndarray:
    """Speeds (m/s, every STEP_S) covering ``length`` metres from standstill to standstill.

    Starting and braking follow half a cosine, so acceleration rises smoothly from zero to
    its peak (``accel`` up, ``brake`` down); a leg too short for ``cruise`` peaks lower.
    """
    top = min(cruise, math.sqrt(4 * length / (math.pi * (1 / accel + 1 / brake))))
    t_up = math.pi * top / (2 * accel)
    t_down = math.pi * top / (2 * brake)
    hold = max(0.0, (length - top * (t_up + t_down) / 2) / top)
    up = top * (1 - np.cos(np.pi * np.arange(0.0, t_up, STEP_S) / t_up)) / 2
    flat = top * (1 + wobble * smooth_wobble(gen, int(hold / STEP_S)))
    down = top * (1 + np.cos(np.pi * np.arange(STEP_S, t_down, STEP_S) / t_down)) / 2
    v = np.concatenate([up, flat, down, [0.0]])
    return v * (length / (float(v.sum()) * STEP_S))


def _drive(gen: np.random.Generator, legs: list[tuple[float, float, float, float, float]],
           stops: list[float]) -> np.ndarray:
    """Speeds every STEP_S over ``legs`` (length, cruise, accel, brake, wobble) with a stop of
    ``stops[k]`` seconds after leg k (one fewer stop than legs)."""
    parts = []
    for k, leg in enumerate(legs):
        parts.append(_leg(gen, *leg))
        if k < len(stops):
            parts.append(np.zeros(max(1, int(stops[k] / STEP_S))))
    return np.concatenate(parts)


@dataclass
class _Samples:
    """A speed profile read at the device's interval: the fixes strictly inside it, and
    how long after the start the end fix comes."""

    rel_t: np.ndarray
    dist: np.ndarray
    speed: np.ndarray
    end_t: float


def _sample(speeds: np.ndarray, dt: float, cap: float | None = None) -> _Samples:
    """Read the profile ``speeds`` (every STEP_S) at ``dt``; slowed in time to stay under ``cap``."""
    step = STEP_S
    if cap is not None and speeds.max() > cap:
        step *= float(speeds.max()) / cap
        speeds = speeds * (STEP_S / step)
    grid = np.arange(speeds.size + 1) * step
    covered = np.concatenate([[0.0], np.cumsum(speeds) * step])
    total = float(grid[-1])
    count = max(1, math.ceil(total / dt - 1e-9))
    rel = np.arange(1, count) * dt
    return _Samples(rel_t=rel, dist=np.interp(rel, grid, covered),
                    speed=np.interp(rel, grid[:-1], speeds), end_t=count * dt)


def _last_finite(values: np.ndarray, upto: int) -> float:
    ok = np.flatnonzero(np.isfinite(values[: upto + 1]))
    return float(values[ok[-1]]) if ok.size else float("nan")


def _stretch_speeds_ok(track: Track, lo: int, hi: int, cap: float) -> bool:
    lat, lon, t = track.lat[lo: hi + 1], track.lon[lo: hi + 1], track.t[lo: hi + 1]
    ok = np.isfinite(lat) & np.isfinite(lon)
    if ok.sum() < 2:
        return True
    speed = segment_lengths_m(lat[ok], lon[ok]) / np.diff(t[ok])
    return bool(speed.max() <= cap)


def _drive_kind(src: Source, rng: random.Random, lo: float, hi: float,
                legs_for: Callable[[float], tuple[list, list]], cap: float,
                hr_plan: Callable[[int, np.ndarray, np.ndarray], np.ndarray],
                sigma_stop: float, speed_limit: float | None) -> Track | None:
    """Drive ``lo``-``hi`` metres of the route inside the recording (5-95% of its length)."""
    total = src.length
    hi = min(hi, 0.8 * total)
    if hi < lo:
        return None
    want = rng.uniform(lo, hi)
    start = rng.uniform(0.05 * total, 0.95 * total - want)
    i0 = src.fix_at_or_before(start)
    j1 = src.fix_at_or_after(src.s[i0] + want)
    if j1 is None or j1 <= i0:
        return None
    length = float(src.s[j1] - src.s[i0])
    legs, stops = legs_for(length)
    samples = _sample(_drive(src.gen, legs, stops), src.dt, cap)
    tr = src.track
    unit = ar_noise(src.gen, samples.rel_t.size, src.dt, rng.uniform(15.0, 40.0))
    # Stopped fixes scatter by sigma_stop; moving ones by half the device's own noise.
    scale = 0.5 * src.sigma + (sigma_stop - 0.5 * src.sigma) * np.exp(-samples.speed / 2.0)
    hr = hr_plan(i0, samples.rel_t, samples.dist)
    cad = np.full(samples.rel_t.size, 0.0 if recorded(tr.cad) else np.nan)
    hr_join = float(hr[-1]) if hr.size and np.isfinite(hr[-1]) and recorded(tr.hr) else float("nan")
    hr_tau = rng.uniform(30.0, 70.0)
    # Noise that would lift a fix-to-fix speed over ``speed_limit`` is scaled down.
    for shrink in (1.0, 0.5, 0.25, 0.0):
        mid = new_rows(src, i0, samples.rel_t, samples.dist, unit * scale[:, None] * shrink)
        mid["hr"] = hr
        mid["cad"] = cad
        out = splice(tr, i0, mid, j1, tr.t[i0] + samples.end_t, hr_from=hr_join, hr_tau=hr_tau)
        if speed_limit is None or _stretch_speeds_ok(out, i0, i0 + samples.rel_t.size + 1, speed_limit):
            return out
    return None


def _hr_relaxing(src: Source, rest: float, tau: float, noise: float):
    def plan(i0: int, rel: np.ndarray, _dist: np.ndarray) -> np.ndarray:
        start = _last_finite(src.track.hr, i0)
        if not recorded(src.track.hr) or not np.isfinite(start):
            return np.full(rel.size, np.nan)
        wander = src.gen.normal(0.0, noise, rel.size).cumsum() * 0.05
        return whole(rest + (start - rest) * np.exp(-rel / tau) + wander)
    return plan


def _hr_along_route(src: Source):
    def plan(i0: int, rel: np.ndarray, dist: np.ndarray) -> np.ndarray:
        if not recorded(src.track.hr):
            return np.full(rel.size, np.nan)
        return whole(interp_finite(src.s[i0] + dist, src.s, src.track.hr))
    return plan


def vehicle(src: Source, rng: random.Random) -> Track | None:
    lo, hi = (2000.0, 6000.0) if src.track.sport == "run" else (4000.0, 12000.0)

    def legs_for(length: float) -> tuple[list, list]:
        count = rng.choices((1, 2, 3), weights=(0.6, 0.25, 0.15))[0]
        while count > 1 and length / count < 800.0:
            count -= 1
        weights = [rng.uniform(0.6, 1.4) for _ in range(count)]
        legs = []
        for w in weights:
            wobble = rng.uniform(0.02, 0.05)
            cruise = min(max(rng.uniform(45.0, 85.0), 45.0 / (1 - wobble)), 85.0 / (1 + wobble)) * KMH
            legs.append((length * w / sum(weights), cruise, rng.uniform(1.5, 3.0), rng.uniform(2.0, 4.0), wobble))
        return legs, [rng.uniform(5.0, 40.0) for _ in range(count - 1)]

    plan = _hr_relaxing(src, rng.uniform(62.0, 88.0), rng.uniform(45.0, 120.0), 1.0)
    return _drive_kind(src, rng, lo, hi, legs_for, 86.0 * KMH, plan,
                       sigma_stop=max(1.0, src.sigma), speed_limit=None)


def traffic(src: Source, rng: random.Random) -> Track | None:
    if src.track.sport != "ride":
        return None

    def legs_for(length: float) -> tuple[list, list]:
        pieces = []
        left = length
        while left > 0:
            piece = rng.uniform(100.0, 800.0)
            if left - piece < 100.0:
                piece = left
            pieces.append(piece)
            left -= piece
        legs = []
        for piece in pieces:
            wobble = rng.uniform(0.0, 0.03)
            cruise = min(rng.uniform(25.0, 50.0), 50.5 / (1 + wobble)) * KMH
            legs.append((piece, cruise, rng.uniform(1.5, 3.5), rng.uniform(2.0, 4.0), wobble))
        return legs, [rng.uniform(10.0, 60.0) for _ in range(len(pieces) - 1)]

    if rng.random() < 0.5:
        plan = _hr_along_route(src)
    else:
        plan = _hr_relaxing(src, rng.uniform(70.0, 95.0), rng.uniform(90.0, 300.0), 1.0)
    return _drive_kind(src, rng, 1000.0, 5000.0, legs_for, 51.0 * KMH, plan,
                       sigma_stop=rng.uniform(1.0, 2.5), speed_limit=52.0 * KMH)
