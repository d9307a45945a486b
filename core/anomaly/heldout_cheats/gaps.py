"""Held-out kinds that leave the route or the recording's owner: ``gap_lift`` (a lift hidden
in a recording gap), ``teleport`` (fixes displaced, or route cut out) and ``copy`` (another
athlete's recording re-uploaded)."""

from __future__ import annotations

import math
import random

import numpy as np

from core.anomaly.heldout_cheats.resampling import ar_noise, like, offset, retime, splice
from core.anomaly.heldout_cheats.source import MIN_FIXES, Source, moving_speed
from core.tracks.geo import distance_m, local_xy
from core.tracks.track import COLUMNS, Track


def gap_lift(src: Source, rng: random.Random) -> Track | None:
    tr = src.track
    if tr.sport != "run":
        return None
    total = src.length
    pace = moving_speed(src)
    if total * 0.94 < 1500.0 or pace <= 0:
        return None
    fix, sf = src.fix, src.s[src.fix]
    x, y = local_xy(tr.lat[fix], tr.lon[fix])
    for _ in range(20):
        hidden = rng.uniform(1500.0, min(10000.0, 0.94 * total))
        # Every start 3% or more into the route whose end lies ``hidden`` further on, before
        # the last 3%, at least 1.5 km away in a straight line.
        ends = np.searchsorted(sf, sf + hidden)
        ok = (sf >= 0.03 * total) & (ends < fix.size)
        ends = np.minimum(ends, fix.size - 1)
        ok &= (sf[ends] <= 0.97 * total) & (np.hypot(x[ends] - x, y[ends] - y) >= 1500.0)
        ok &= ends > np.arange(fix.size) + 1
        starts = np.flatnonzero(ok)
        if starts.size == 0:
            continue
        k = int(starts[rng.randrange(starts.size)])
        i0, j1 = int(fix[k]), int(fix[ends[k]])
        if distance_m(tr.lat[i0], tr.lon[i0], tr.lat[j1], tr.lon[j1]) < 1500.0:
            continue
        length = float(src.s[j1] - src.s[i0])
        took = float(tr.t[j1] - tr.t[i0])
        g_lo = max(120.0, length / 22.0 + 60.0, 2 * src.dt)
        g_hi = min(1200.0, 0.6 * length / pace, 0.8 * took)
        if g_lo > g_hi:
            continue
        gap = rng.uniform(g_lo, g_hi)
        empty = {name: np.zeros(0) for name in COLUMNS}
        rest = rng.uniform(75.0, 100.0)
        return splice(tr, i0, empty, j1, tr.t[i0] + gap, hr_from=rest, hr_tau=rng.uniform(40.0, 90.0))
    return None


def teleport(src: Source, rng: random.Random) -> Track | None:
    tr = src.track
    variant = rng.choice(("block", "drift", "cut"))
    if variant == "cut":
        out = _cut(src, rng)
        if out is not None:
            return out
        variant = "block"
    fix = src.fix
    bearing = rng.uniform(0.0, 2 * math.pi)
    reach = rng.uniform(300.0, 3000.0)
    seconds = rng.uniform(10.0, 240.0) if variant == "block" else rng.uniform(120.0, 900.0)
    # From a fix in the middle 80% of them, the fixes of the next ``seconds`` (at most half
    # of them all, at least two).
    k = rng.randrange(int(0.1 * fix.size), int(0.9 * fix.size))
    begin = tr.t[fix[k]]
    rows = fix[k:][tr.t[fix[k:]] <= begin + seconds][: fix.size // 2]
    if rows.size < 2:
        rows = fix[k: k + 2]
    if variant == "drift" and rows.size >= 5:
        frac = (tr.t[rows] - begin) / (tr.t[rows[-1]] - begin)
        weight = 1.0 - np.abs(2.0 * frac - 1.0)
    else:
        weight = np.ones(rows.size)
    lat, lon = tr.lat.copy(), tr.lon.copy()
    lat[rows], lon[rows] = offset(lat[rows], lon[rows], reach * weight * math.sin(bearing),
                                  reach * weight * math.cos(bearing))
    cols = {name: getattr(tr, name).copy() for name in COLUMNS}
    cols["lat"], cols["lon"] = lat, lon
    return like(tr, cols)


def _cut(src: Source, rng: random.Random) -> Track | None:
    tr = src.track
    total = src.length
    for _ in range(30):
        skip = rng.uniform(600.0, 3000.0)
        if skip > 0.8 * total:
            return None
        i0 = src.fix_at_or_before(rng.uniform(0.05 * total, 0.95 * total - skip))
        j1 = src.fix_at_or_after(src.s[i0] + skip)
        if j1 is None or j1 <= i0 + 1:
            continue
        if distance_m(tr.lat[i0], tr.lon[i0], tr.lat[j1], tr.lon[j1]) < 150.0:
            continue
        empty = {name: np.zeros(0) for name in COLUMNS}
        return splice(tr, i0, empty, j1, tr.t[i0] + src.dt)
    return None


def copy(src: Source, rng: random.Random) -> Track | None:
    tr = src.track
    n = len(tr)
    lo = int(rng.uniform(0.02, 0.08) * n)
    hi = n - 1 - int(rng.uniform(0.02, 0.08) * n)
    if hi - lo < MIN_FIXES:
        return None
    if src.dt <= 1.5:
        interval = float(rng.randint(2, 4))
    else:
        interval = float(rng.choice([k for k in range(1, 7) if abs(k - src.dt) > 0.5]))
    later = rng.uniform(14.0, 365.0) * 86400.0 + rng.uniform(-3.0, 3.0) * 3600.0
    stretch = rng.uniform(0.96, 1.04)
    mid, end_t = retime(tr, lo, hi, 1.0 / stretch, interval, float(tr.t[lo]) + later)
    last = tr.take(np.array([hi]))
    cols = {name: np.concatenate([mid[name], getattr(last, name)]) for name in COLUMNS}
    cols["t"][-1] = end_t
    bearing = rng.uniform(0.0, 2 * math.pi)
    shift = rng.uniform(3.0, 8.0)
    jitter = ar_noise(src.gen, cols["t"].size, interval, rng.uniform(5.0, 20.0)) * rng.uniform(2.0, 5.0)
    cols["lat"], cols["lon"] = offset(cols["lat"], cols["lon"], shift * math.sin(bearing) + jitter[:, 0],
                                      shift * math.cos(bearing) + jitter[:, 1])
    return like(tr, cols)
