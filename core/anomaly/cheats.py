"""Realistic cheats made from real recordings, for the labelled evaluation and the tests
(never imported at run time). Each keeps the recording's GPS noise, sampling and terrain:

- ``vehicle``: a stretch of 1.5-10 km driven: 40-75 km/h cruising, car-like acceleration and
  braking, stops at junctions, logged at the device's own interval, heart rate sinking as
  the athlete sits; the rest of the activity goes on after it.
- ``compressed``: the whole recording sped up 1.2-1.5 times, resampled back to the
  device's interval (heart rate and cadence left as recorded).
- ``teleport``: a spoofed location: blocks of fixes moved 0.4-2 km away and back (distance
  gained), or a stretch of 0.5-2 km skipped in one step (a shortcut).
- ``ebike``: a ride whose climbs (over 3%) are ridden at an assisted 20-25 km/h (rides whose
  climbs give a motor less than 1.5 km or 2 minutes to gain are not used).
- ``copy_of``: another athlete's recording re-uploaded: new date, positions jittered by 1-2 m,
  every second or third fix kept, ends trimmed, timing scaled by up to 3%.
- ``traffic``: 1.5-4 km of a ride driven in town traffic: cruising at 22-45 km/h, pulling
  away at 1.8-2.8 m/s² (easing off near the cruising speed), stopping every 150-600 m for
  5-45 s, the stopped car logged in place with 1-3 m of GPS jitter.
- ``gap_lift``: a run whose points stop and resume 2-8 km further along the route and at
  least 1.5 km away in a straight line: the hidden kilometres driven at 20-60 km/h after a
  wait of 30-240 s, so that the straight line was crossed faster than the athlete's average
  pace (a slower "lift" gains nothing); a lift hidden in a "lost signal"; the rest of the
  run shifted in time, its heart rate resuming near rest as in ``vehicle``.

This is the development family: the held-out family (``heldout_cheats``) makes the same kinds by
other recipes and other ranges, and the detector is never tuned on it. ``make`` is the
entry point both families share.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

import numpy as np

from core.tracks.cleaning import clock_glitch
from core.tracks.geo import segment_lengths_m
from core.tracks.track import COLUMNS, Track

EBIKE_MIN_M = 1500.0  # assisted climbing needed to make an e-bike case of a ride
EBIKE_MIN_SAVED_S = 120.0  # seconds a motor must save on the climbs


def finite(track: Track) -> Track:
    """The fixes with time and position, in time order, clock glitches dropped."""
    ok = np.isfinite(track.t) & np.isfinite(track.lat) & np.isfinite(track.lon)
    ok &= ~clock_glitch(track.t, ok)
    out = track.take(ok)
    order = np.argsort(out.t, kind="stable")
    return out.take(order)


def _median_dt(t: np.ndarray) -> float:
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def _cumdist(track: Track) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(segment_lengths_m(track.lat, track.lon))])


def _resample(track: Track, interval: float) -> Track:
    """The track logged every ``interval`` seconds (values interpolated in time)."""
    t = track.t
    grid = np.arange(t[0], t[-1] + 1e-6, interval)
    cols = {"t": grid}
    for name in COLUMNS[1:]:
        values = getattr(track, name)
        ok = np.isfinite(values)
        cols[name] = np.interp(grid, t[ok], values[ok]) if ok.sum() >= 2 else np.full(grid.size, np.nan)
    return Track(**cols, sport=track.sport, name=track.name)


def _along(track: Track, dist: np.ndarray, where: np.ndarray) -> dict:
    """Columns interpolated at distances ``where`` along the track."""
    out = {}
    for name in ("lat", "lon", "ele", "hr", "cad"):
        values = getattr(track, name)
        ok = np.isfinite(values)
        out[name] = np.interp(where, dist[ok], values[ok]) if ok.sum() >= 2 else np.full(where.size, np.nan)
    return out


def _join(parts: list[dict], sport: str, name: str | None) -> Track:
    cols = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
    return Track(**cols, sport=sport, name=name)


def _slice(track: Track, a: int, b: int, shift: float = 0.0) -> dict:
    cols = {c: getattr(track, c)[a:b].copy() for c in COLUMNS}
    cols["t"] = cols["t"] + shift
    return cols


def _stops(rng: random.Random, length: float, first: tuple, spacing: tuple, margin: float) -> list[float]:
    """Where a car stops along ``length`` metres: the first stop ``first`` metres in, then
    every ``spacing`` metres, none within ``margin`` of the end, and the end itself."""
    stops = []
    pos = rng.uniform(*first)
    while pos < length - margin:
        stops.append(pos)
        pos += rng.uniform(*spacing)
    return [*stops, length]


def _drive(rng: random.Random, length: float, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Time and distance of a car covering ``length`` metres with stops on the way."""
    cruise = rng.uniform(40, 75) / 3.6
    accel, brake = rng.uniform(1.5, 2.6), rng.uniform(2.0, 3.2)
    stops = _stops(rng, length, (500, 1500), (700, 2200), 300)
    t, s, v = 0.0, 0.0, 0.0
    ts, ss = [0.0], [0.0]
    target = cruise
    for stop in stops:
        while s < stop - 0.5:
            remaining = stop - s
            if v * v / (2 * brake) >= remaining:
                v = max(v - brake * step, 0.5)
            elif v < target:
                v = min(v + accel * step * (1 - v / (target * 1.3)), target)
            else:
                target = cruise * rng.uniform(0.9, 1.1)
            s = min(s + v * step, stop)
            t += step
            ts.append(t)
            ss.append(s)
        wait = rng.uniform(3, 40) if stop < length else 0.0
        t += wait
        ts.append(t)
        ss.append(s)
        v = 0.0
    return np.asarray(ts), np.asarray(ss)


def vehicle(track: Track, rng: random.Random) -> Track:
    """A stretch of the route driven by car, the rest as recorded."""
    track = finite(track)
    dist = _cumdist(track)
    total = dist[-1]
    lo, hi = (1500, 5000) if track.sport == "run" else (3000, 10000)
    length = min(rng.uniform(lo, hi), 0.45 * total)
    d0 = rng.uniform(0.25, 0.75) * (total - length)
    a = int(np.searchsorted(dist, d0))
    b = int(np.searchsorted(dist, d0 + length))
    if b - a < 5:
        return track
    interval = _median_dt(track.t)
    dt_drive, ds_drive = _drive(rng, float(dist[b] - dist[a]))
    sample_t = np.arange(0.0, dt_drive[-1], interval)
    where = dist[a] + np.interp(sample_t, dt_drive, ds_drive)
    mid = _along(track, dist, where)
    start = track.t[a]
    hr0 = mid["hr"][0] if np.isfinite(mid["hr"][0]) else np.nan
    hr = 85 + (hr0 - 85) * np.exp(-sample_t / 90.0) + rng.gauss(0, 2) if np.isfinite(hr0) else mid["hr"]
    drive = {"t": start + sample_t, "lat": mid["lat"], "lon": mid["lon"], "ele": mid["ele"],
             "acc": np.full(sample_t.size, np.nan), "hr": hr, "cad": np.full(sample_t.size, np.nan)}
    shift = (start + sample_t[-1] + interval) - track.t[b]
    return _join([_slice(track, 0, a), drive, _slice(track, b, len(track), shift)], track.sport, track.name)


def compressed(track: Track, rng: random.Random) -> Track:
    """The whole recording sped up, logged at the device's interval again."""
    track = finite(track)
    k = rng.uniform(1.2, 1.5)
    interval = _median_dt(track.t)
    fast = replace(track, t=track.t[0] + (track.t - track.t[0]) / k)
    return _resample(fast, interval)


def teleport(track: Track, rng: random.Random, shortcut: bool) -> Track:
    """Fixes spoofed far away and back, or a stretch skipped in one jump."""
    track = finite(track)
    n = len(track)
    dist = _cumdist(track)
    if shortcut:
        length = min(rng.uniform(500, 2000), 0.3 * dist[-1])
        d0 = rng.uniform(0.2, 0.7) * (dist[-1] - length)
        a, b = int(np.searchsorted(dist, d0)), int(np.searchsorted(dist, d0 + length))
        shift = -(track.t[b] - track.t[a]) + _median_dt(track.t)
        return _join([_slice(track, 0, a), _slice(track, b, n, shift)], track.sport, track.name)
    out = {c: getattr(track, c).copy() for c in COLUMNS}
    for _ in range(rng.randint(2, 3)):
        size = rng.randint(15, 40)
        a = rng.randrange(int(n * 0.1), max(int(n * 0.1) + 1, int(n * 0.9) - size))
        metres, angle = rng.uniform(400, 2000), rng.uniform(0, 2 * math.pi)
        out["lat"][a:a + size] += metres * math.cos(angle) / 111_320
        out["lon"][a:a + size] += metres * math.sin(angle) / (111_320 * math.cos(math.radians(out["lat"][a])))
    return Track(**out, sport=track.sport, name=track.name)


def ebike(track: Track, rng: random.Random) -> Track | None:
    """Climbs ridden with a motor's help; None when the ride has too little climbing."""
    track = finite(track)
    if np.isfinite(track.ele).sum() < 0.8 * len(track):
        return None
    dist = _cumdist(track)
    ok = np.isfinite(track.ele)
    ele = np.interp(dist, dist[ok], track.ele[ok])
    # Grade over 200 m around each fix.
    ahead = np.interp(dist + 100, dist, ele)
    behind = np.interp(dist - 100, dist, ele)
    grade = (ahead - behind) / 200.0
    steps = np.diff(dist)
    dts = np.diff(track.t)
    climbing = (grade[1:] > 0.03) & (dts > 0)
    if steps[climbing].sum() < 1000:
        return None
    assist = rng.uniform(20, 25) / 3.6
    speed = np.where(dts > 0, steps / np.maximum(dts, 1e-9), 0.0)
    boosted = climbing & (speed < assist) & (dts < 30)
    new_dts = np.where(boosted, steps / (assist * rng.uniform(0.95, 1.05)), dts)
    # A ride whose climbs were already near the assisted speed gains nothing from a motor:
    # no e-bike case to make of it.
    if steps[boosted].sum() < EBIKE_MIN_M or (dts - new_dts).sum() < EBIKE_MIN_SAVED_S:
        return None
    t = track.t[0] + np.concatenate([[0.0], np.cumsum(new_dts)])
    return _resample(replace(track, t=t), _median_dt(track.t))


def copy_of(track: Track, rng: random.Random) -> Track:
    """Someone else's recording re-uploaded with light disguise."""
    track = finite(track)
    n = len(track)
    trim_a, trim_b = int(n * rng.uniform(0, 0.03)), int(n * rng.uniform(0, 0.03))
    keep = np.arange(trim_a, n - trim_b, rng.choice((1, 2, 3)) if _median_dt(track.t) <= 2 else 1)
    out = track.take(keep)
    noise = rng.uniform(1.0, 2.0)
    nrng = np.random.default_rng(rng.getrandbits(32))
    lat0 = float(out.lat[0])
    out.lat = out.lat + nrng.normal(0, noise, len(out)) / 111_320
    out.lon = out.lon + nrng.normal(0, noise, len(out)) / (111_320 * math.cos(math.radians(lat0)))
    scale = rng.uniform(0.97, 1.03)
    out.t = out.t[0] + (out.t - out.t[0]) * scale + rng.uniform(30, 400) * 86400
    return out


def _stop_and_go(rng: random.Random, length: float, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Time and distance of a car in town traffic covering ``length`` metres."""
    cruise = rng.uniform(22, 45) / 3.6
    accel, brake = rng.uniform(1.8, 2.8), rng.uniform(2.0, 3.0)
    stops = _stops(rng, length, (150, 600), (150, 600), 100)
    t, s = 0.0, 0.0
    ts, ss = [0.0], [0.0]
    for stop in stops:
        v = 0.0
        top = cruise * rng.uniform(0.85, 1.1)
        while s < stop - 0.3:
            if v * v / (2 * brake) >= stop - s:
                v = max(v - brake * step, 0.4)
            else:
                v = min(v + accel * step * max(0.15, 1 - (v / top) ** 2), top)
            s = min(s + v * step, stop)
            t += step
            ts.append(t)
            ss.append(s)
        wait = rng.uniform(5, 45) if stop < length else 0.0
        t += wait
        ts.append(t)
        ss.append(s)
    return np.asarray(ts), np.asarray(ss)


def traffic(track: Track, rng: random.Random) -> Track | None:
    """A stretch of a ride driven through town traffic; None for a run or a short ride."""
    track = finite(track)
    dist = _cumdist(track)
    if track.sport != "ride" or dist[-1] < 5000 or len(track) < 100:
        return None
    length = min(rng.uniform(1500, 4000), 0.4 * dist[-1])
    d0 = rng.uniform(0.2, 0.8) * (dist[-1] - length)
    a, b = int(np.searchsorted(dist, d0)), int(np.searchsorted(dist, d0 + length))
    if b - a < 5:
        return None
    interval = _median_dt(track.t)
    dt_drive, ds_drive = _stop_and_go(rng, float(dist[b] - dist[a]))
    sample_t = np.arange(0.0, dt_drive[-1], interval)
    where = dist[a] + np.interp(sample_t, dt_drive, ds_drive)
    mid = _along(track, dist, where)
    jitter = rng.uniform(1.0, 3.0)
    nrng = np.random.default_rng(rng.getrandbits(32))
    lat0 = float(mid["lat"][0])
    mid["lat"] = mid["lat"] + nrng.normal(0, jitter, sample_t.size) / 111_320
    mid["lon"] = mid["lon"] + nrng.normal(0, jitter, sample_t.size) / (111_320 * math.cos(math.radians(lat0)))
    drive = {"t": track.t[a] + sample_t, "lat": mid["lat"], "lon": mid["lon"], "ele": mid["ele"],
             "acc": np.full(sample_t.size, np.nan), "hr": mid["hr"], "cad": np.full(sample_t.size, np.nan)}
    shift = (track.t[a] + sample_t[-1] + interval) - track.t[b]
    return _join([_slice(track, 0, a), drive, _slice(track, b, len(track), shift)], track.sport, track.name)


def gap_lift(track: Track, rng: random.Random) -> Track | None:
    """A run that stops logging and resumes kilometres away; None for a ride or a run with
    no stretch whose ends lie 1.5 km apart."""
    track = finite(track)
    dist = _cumdist(track)
    if track.sport != "run" or dist[-1] < 4000:
        return None
    x = (track.lon - track.lon[0]) * 111_320 * math.cos(math.radians(float(track.lat[0])))
    y = (track.lat - track.lat[0]) * 111_320
    stride = max(1, len(track) // 400)
    idx = np.arange(0, len(track), stride)
    pairs = [(int(a), int(b)) for a in idx for b in idx
             if 2000 <= dist[b] - dist[a] <= 8000 and math.hypot(x[b] - x[a], y[b] - y[a]) >= 1500
             and 0 < a and b < len(track) - 1]
    if not pairs:
        return None
    # The hidden kilometres at a car's pace, after a wait for the lift: a lift only when it
    # crossed the straight line faster than the athlete's own average pace.
    pace = dist[-1] / max(float(track.t[-1] - track.t[0]), 1.0)
    for _ in range(20):
        a, b = pairs[rng.randrange(len(pairs))]
        gap = (dist[b] - dist[a]) / (rng.uniform(20, 60) / 3.6) + rng.uniform(30, 240)
        if math.hypot(x[b] - x[a], y[b] - y[a]) / gap > pace:
            break
    else:
        return None
    shift = (track.t[a] + gap) - track.t[b]
    after = _slice(track, b, len(track), shift)
    # Heart rate as in ``vehicle``: sinking towards 85 while the athlete sits, then back up
    # to what was recorded within a minute or two of running again.
    hr0, hr = track.hr[a], after["hr"]
    if np.isfinite(hr0) and np.isfinite(hr).any():
        rested = 85 + (hr0 - 85) * math.exp(-gap / 90.0)
        since = after["t"] - after["t"][0]
        first = hr[np.isfinite(hr)][0]
        after["hr"] = hr - max(first - rested, 0.0) * np.exp(-since / 40.0)
    return _join([_slice(track, 0, a + 1), after], track.sport, track.name)


KINDS = ("vehicle", "traffic", "gap_lift", "compressed", "ride_as_run", "teleport", "climb_motor", "copy")


def make(kind: str, track: Track, rng: random.Random) -> Track | None:
    """The altered track for ``kind`` made from real recording ``track`` (its ``sport`` is
    what it is uploaded as); None when this recording cannot make that kind."""
    if kind == "vehicle":
        return vehicle(track, rng)
    if kind == "traffic":
        return traffic(track, rng)
    if kind == "gap_lift":
        return gap_lift(track, rng)
    if kind == "compressed":
        return compressed(track, rng)
    if kind == "ride_as_run":
        if track.sport != "ride" or "running" in (track.name or "").lower():
            return None
        return replace(finite(track), sport="run")
    if kind == "teleport":
        return teleport(track, rng, shortcut=rng.random() < 0.5)
    if kind == "climb_motor":
        return ebike(track, rng) if track.sport == "ride" else None
    if kind == "copy":
        return copy_of(track, rng)
    raise ValueError(f"unknown cheat kind {kind!r}")
