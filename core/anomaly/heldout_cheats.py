"""Held-out cheat generators: altered real recordings the anomaly detector is never tuned on.

Each kind takes one clean real recording and changes it the way a cheating athlete does.
The recipes and ranges are chosen apart from the development family, so a detector that
only learned that family's recipes shows it here. Unlike a plain recipe (a stretch at one
constant speed, a whole track's clock scaled, one jump), drives here accelerate, brake and
stop; lifts hide in lost-signal gaps; compression may touch only part of the recording; a
copy is re-sampled and re-dated. Common to every kind: the source's
points with a bad clock (missing, backwards, repeated, a clock glitch) are dropped first;
new fixes are laid at the device's own logging interval (the median step of the source)
along the recorded fixes themselves (interpolated over cumulative distance, so the
device's GPS wiggle comes along) with a little correlated noise of the device's size on
top; new heart rate and cadence values are whole numbers as a device writes them; what
follows an altered stretch is kept as recorded, shifted in time. A recording with fewer
than 60 fixes or under 4 minutes makes nothing.

- ``vehicle`` (run or ride): 2-6 km (run) or 4-12 km (ride) of the route driven at a
  45-85 km/h cruise that wanders by 2-5%, in one to three legs split by 5-40 s junction
  stops; every leg starts and brakes on a cosine (jerk-limited) ramp peaking at
  1.5-3 m/s² up and 2-4 m/s² down. Heart rate relaxes toward 62-88 bpm (time constant
  45-120 s) and climbs back over the first minute after; cadence reads zero.
- ``traffic`` (rides): 1-5 km of the route in stop-and-go town traffic: legs of 100-800 m
  between stops of 10-60 s, cruising at 25-50 km/h (the whole profile held under
  51 km/h, fix-to-fix speeds under 52), cosine ramps peaking at 1.5-3.5 m/s² up and
  2-4 m/s² down; stopped fixes keep being logged with 1-2.5 m of correlated jitter.
  Heart rate either follows the recording at the same place on the route or drifts
  toward 70-95 bpm.
- ``gap_lift`` (runs): the fixes stop, then resume 1.5-10 km further along the route
  (the ends at least 1.5 km apart in a straight line) after 2-20 minutes, never sooner
  than the hidden stretch takes by car (22 m/s plus a minute) nor later than 60% of the
  time the runner needs for it at their own pace (and 80% of what the recording took).
  Heart rate restarts at 75-100 bpm and climbs back to the recorded one.
- ``compressed`` (run or ride): either one contiguous half or third of the recording's
  points sped up 1.25-1.6x, or the whole of it sped up 1.12-1.35x, then resampled back to
  the device's interval (pauses stay pauses, shortened by the same factor).
- ``ride_as_run`` (rides; returned as a run): the ride itself, in 60% of cases resampled
  to a run watch's 1-5 s interval, in 75% with the cadence removed. Skipped when the
  track's name (a caller checks the file name by putting it there) or a text in its meta
  says run or jog, or when it moves at a run's pace (median moving speed under 13 km/h):
  a mislabelled run is no cheat.
- ``teleport`` (run or ride): one of a block of 10-240 s of consecutive fixes displaced
  0.3-3 km (the track then comes back), a position offset that drifts linearly out to
  0.3-3 km and back over 2-15 min, or a cut that drops 0.6-3 km of route in one step
  (ends at least 150 m apart; the rest follows one interval later).
- ``climb_motor`` (rides with elevation): the climb gaining most metres at over 3% average
  grade over at least 1 km without falling 15 m below its highest point so far
  (elevation on a 20 m distance grid, a 180 m running median then a 220 m running mean),
  covered either at a steady 15-30 km/h (slower on its steeper parts) or by a power
  model: the rider's own power (from the climb's recorded moving time) plus 250-400 W of
  motor, 78-95 kg, CdA 0.30-0.40 m², Crr 0.004-0.006, capped at 55 km/h. Heart rate and
  cadence as recorded at the same place (heart rate up to 12 bpm lower). None when
  neither saves 90 s of the recorded moving time.
- ``copy`` (run or ride): another athlete's recording re-uploaded: 2-8% of the points
  cropped from each end, moved 14-365 days later (and up to 3 h either way in the day), its timing stretched by
  a factor of 0.96-1.04, resampled by interpolation to another interval (a 1 s device
  becomes 2-4 s, a coarser one 1-6 s), shifted by a constant 3-8 m with 2-5 m of
  correlated jitter.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.tracks.cleaning import clock_glitch
from core.tracks.geo import distance_m, local_xy, segment_lengths_m
from core.tracks.track import COLUMNS, Track

KINDS = ("vehicle", "traffic", "gap_lift", "compressed", "ride_as_run", "teleport", "climb_motor", "copy")

MIN_FIXES = 60
MIN_DURATION_S = 240.0
KMH = 1 / 3.6
M_PER_DEG_LAT = 111_320.0
# Fine time step of the speed profiles, in seconds.
STEP_S = 0.1
# A step longer than this (and than five device intervals) is a pause, never filled in.
PAUSE_S = 15.0
GRAVITY = 9.81
AIR_DENSITY = 1.2
RUN_WORDS = re.compile(r"(?<![a-z])(run|runs|running|jog|jogging)(?![a-z])")


@dataclass
class _Source:
    """A prepared recording with its route and device facts."""

    track: Track
    dt: float  # the device's logging interval (s)
    fix: np.ndarray  # rows holding a position
    s: np.ndarray  # route distance at every row (m)
    sigma: float  # the device's GPS noise (m)
    gen: np.random.Generator

    @property
    def length(self) -> float:
        return float(self.s[self.fix[-1]])

    def fix_at_or_before(self, dist: float) -> int:
        return int(self.fix[max(0, np.searchsorted(self.s[self.fix], dist, side="right") - 1)])

    def fix_at_or_after(self, dist: float) -> int | None:
        k = int(np.searchsorted(self.s[self.fix], dist, side="left"))
        return int(self.fix[k]) if k < self.fix.size else None


def make(kind: str, track: Track, rng: random.Random) -> Track | None:
    """The altered track for ``kind`` made from real recording ``track``; None when this recording
    cannot make that kind (wrong sport, too short, no elevation, no climb...)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    prepared = _prepared(track)
    if prepared is None or prepared.sport not in ("run", "ride"):
        return None
    src = _source(prepared, rng)
    return _checked(MAKERS[kind](src, rng))


# -- preparation -------------------------------------------------------------------------------

def _prepared(track: Track) -> Track | None:
    """The rows with a trustworthy, strictly increasing clock; None when too little is left."""
    t = np.asarray(track.t, dtype=np.float64)
    alive = np.isfinite(t)
    alive &= ~clock_glitch(t, alive)
    idx = np.flatnonzero(alive)
    if idx.size < MIN_FIXES:
        return None
    tt = t[idx]
    before = np.concatenate([[-np.inf], np.maximum.accumulate(tt)[:-1]])
    out = track.take(idx[tt > before])
    for name in COLUMNS:
        setattr(out, name, np.asarray(getattr(out, name), dtype=np.float64))
    with np.errstate(invalid="ignore"):
        bad = ~((np.abs(out.lat) <= 90) & (np.abs(out.lon) <= 180)) | ((out.lat == 0) & (out.lon == 0))
    out.lat[bad] = np.nan
    out.lon[bad] = np.nan
    fixes = np.count_nonzero(np.isfinite(out.lat) & np.isfinite(out.lon))
    if fixes < MIN_FIXES or out.t[-1] - out.t[0] < MIN_DURATION_S:
        return None
    return out


def _source(track: Track, rng: random.Random) -> _Source:
    fix = np.flatnonzero(np.isfinite(track.lat) & np.isfinite(track.lon))
    along = np.concatenate([[0.0], np.cumsum(segment_lengths_m(track.lat[fix], track.lon[fix]))])
    s = np.interp(np.arange(len(track)), fix, along)
    steps = np.diff(track.t)
    return _Source(track=track, dt=float(np.median(steps)), fix=fix, s=s,
                   sigma=_gps_sigma(track, fix), gen=np.random.default_rng(rng.getrandbits(63)))


def _gps_sigma(track: Track, fix: np.ndarray) -> float:
    """The fixes' scatter about a five-fix running mean (robust), in metres."""
    x, y = local_xy(track.lat[fix], track.lon[fix])
    kernel = np.full(5, 0.2)
    resid = np.concatenate([x[2:-2] - np.convolve(x, kernel, "valid"),
                            y[2:-2] - np.convolve(y, kernel, "valid")])
    mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
    return float(np.clip(mad, 0.3, 4.0))


def _checked(track: Track | None) -> Track | None:
    """``track`` when its columns agree and its clock strictly increases, else None."""
    if track is None:
        return None
    n = len(track)
    if n < 2 or any(getattr(track, name).size != n for name in COLUMNS):
        return None
    if not (np.all(np.isfinite(track.t)) and np.all(np.diff(track.t) > 0)):
        return None
    return track


# -- shared pieces -----------------------------------------------------------------------------

def _like(track: Track, cols: dict[str, np.ndarray], sport: str | None = None) -> Track:
    return Track(**cols, sport=sport or track.sport, name=track.name, device=track.device,
                 indoor=track.indoor, meta=dict(track.meta))


def _interp_finite(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``fp`` over increasing ``xp`` at ``x``, from its finite values only (NaN when none)."""
    ok = np.isfinite(fp) & np.isfinite(xp)
    if not ok.any():
        return np.full(np.shape(x), np.nan)
    xs, first = np.unique(xp[ok], return_index=True)
    return np.interp(x, xs, fp[ok][first])


def _along(src: _Source, dist: np.ndarray) -> dict[str, np.ndarray]:
    """Position and elevation at route distances ``dist``, on the recorded fixes."""
    tr, fix = src.track, src.fix
    sf = src.s[fix]
    return {"lat": _interp_finite(dist, sf, tr.lat[fix]), "lon": _interp_finite(dist, sf, tr.lon[fix]),
            "ele": _interp_finite(dist, sf, tr.ele[fix])}


def _offset(lat: np.ndarray, lon: np.ndarray, east: np.ndarray, north: np.ndarray):
    lat2 = lat + north / M_PER_DEG_LAT
    lon2 = lon + east / (M_PER_DEG_LAT * np.cos(np.radians(lat)))
    return lat2, lon2


def _ar(gen: np.random.Generator, n: int, dt: float, tau: float) -> np.ndarray:
    """Two columns (east, north) of unit-variance noise correlated over ``tau`` seconds."""
    rho = math.exp(-dt / tau)
    shocks = (gen.normal(size=(n, 2)) * math.sqrt(1 - rho * rho)).tolist()
    e, nn = (float(v) for v in gen.normal(size=2))
    out = np.empty((n, 2))
    for k, (a, b) in enumerate(shocks):
        e = rho * e + a
        nn = rho * nn + b
        out[k, 0] = e
        out[k, 1] = nn
    return out


def _smooth_wobble(gen: np.random.Generator, n: int) -> np.ndarray:
    """A smooth zero-ended curve over ``n`` samples with peak magnitude 1 (a few sine modes)."""
    if n < 2:
        return np.zeros(n)
    x = np.linspace(0.0, 1.0, n)
    curve = sum(gen.normal() / k * np.sin(np.pi * k * x) for k in range(1, 5))
    peak = float(np.max(np.abs(curve)))
    return curve / peak if peak > 0 else np.zeros(n)


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
    flat = top * (1 + wobble * _smooth_wobble(gen, int(hold / STEP_S)))
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


def _recorded(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).mean() > 0.5)


def _last_finite(values: np.ndarray, upto: int) -> float:
    ok = np.flatnonzero(np.isfinite(values[: upto + 1]))
    return float(values[ok[-1]]) if ok.size else float("nan")


def _whole(values: np.ndarray) -> np.ndarray:
    return np.round(values)


def _rows(src: _Source, i0: int, rel: np.ndarray, dist: np.ndarray, jitter: np.ndarray) -> dict:
    """New fixes ``rel`` seconds after row ``i0`` at route distance ``dist`` past it, moved by
    ``jitter`` (east, north in metres); heart rate and cadence NaN, accuracy the device's."""
    tr = src.track
    pos = _along(src, src.s[i0] + dist)
    lat, lon = _offset(pos["lat"], pos["lon"], jitter[:, 0], jitter[:, 1])
    acc = np.nanmedian(tr.acc) if np.isfinite(tr.acc).any() else np.nan
    return {"t": tr.t[i0] + rel, "lat": lat, "lon": lon, "ele": pos["ele"], "acc": np.full(rel.size, acc),
            "hr": np.full(rel.size, np.nan), "cad": np.full(rel.size, np.nan)}


def _splice(track: Track, i0: int, mid: dict, j1: int, resume_t: float,
            hr_from: float = float("nan"), hr_tau: float = 60.0) -> Track:
    """Rows up to ``i0``, the new rows ``mid``, then rows from ``j1`` on shifted so that row
    ``j1`` comes at ``resume_t``; with ``hr_from``, the heart rate after the join climbs
    from it back to the recorded one over ``hr_tau`` seconds."""
    shift = resume_t - track.t[j1]
    cols = {}
    for name in COLUMNS:
        tail = getattr(track, name)[j1:].copy()
        if name == "t":
            tail = tail + shift
        cols[name] = np.concatenate([getattr(track, name)[: i0 + 1], mid[name], tail])
    if np.isfinite(hr_from):
        start = i0 + 1 + mid["t"].size
        since = cols["t"][start:] - resume_t
        rec = cols["hr"][start:]
        cols["hr"][start:] = _whole(rec + (hr_from - rec) * np.exp(-since / hr_tau))
    return _like(track, cols)


def _stretch_speeds_ok(track: Track, lo: int, hi: int, cap: float) -> bool:
    lat, lon, t = track.lat[lo: hi + 1], track.lon[lo: hi + 1], track.t[lo: hi + 1]
    ok = np.isfinite(lat) & np.isfinite(lon)
    if ok.sum() < 2:
        return True
    speed = segment_lengths_m(lat[ok], lon[ok]) / np.diff(t[ok])
    return bool(speed.max() <= cap)


def _moving_time(src: _Source, lo: int, hi: int) -> float:
    """Seconds spent moving (over 0.8 m/s, no pause) between fix rows ``lo`` and ``hi``."""
    tr = src.track
    rows = src.fix[(src.fix >= lo) & (src.fix <= hi)]
    dist = segment_lengths_m(tr.lat[rows], tr.lon[rows])
    dt = np.diff(tr.t[rows])
    moving = (dt <= max(PAUSE_S, 5 * src.dt)) & (dist > 0.8 * dt)
    return float(dt[moving].sum())


def _moving_speed(src: _Source) -> float:
    """Median speed (m/s) over steps between consecutive fixes that move at all."""
    tr, fix = src.track, src.fix
    dist = segment_lengths_m(tr.lat[fix], tr.lon[fix])
    dt = np.diff(tr.t[fix])
    short = dt <= max(PAUSE_S, 5 * src.dt)
    speed = dist[short] / dt[short]
    moving = speed[speed > 0.5]
    return float(np.median(moving)) if moving.size else 0.0


def _drive_kind(src: _Source, rng: random.Random, lo: float, hi: float,
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
    unit = _ar(src.gen, samples.rel_t.size, src.dt, rng.uniform(15.0, 40.0))
    # Stopped fixes scatter by sigma_stop; moving ones by half the device's own noise.
    scale = 0.5 * src.sigma + (sigma_stop - 0.5 * src.sigma) * np.exp(-samples.speed / 2.0)
    hr = hr_plan(i0, samples.rel_t, samples.dist)
    cad = np.full(samples.rel_t.size, 0.0 if _recorded(tr.cad) else np.nan)
    hr_join = float(hr[-1]) if hr.size and np.isfinite(hr[-1]) and _recorded(tr.hr) else float("nan")
    hr_tau = rng.uniform(30.0, 70.0)
    # Noise that would lift a fix-to-fix speed over ``speed_limit`` is scaled down.
    for shrink in (1.0, 0.5, 0.25, 0.0):
        mid = _rows(src, i0, samples.rel_t, samples.dist, unit * scale[:, None] * shrink)
        mid["hr"] = hr
        mid["cad"] = cad
        out = _splice(tr, i0, mid, j1, tr.t[i0] + samples.end_t, hr_from=hr_join, hr_tau=hr_tau)
        if speed_limit is None or _stretch_speeds_ok(out, i0, i0 + samples.rel_t.size + 1, speed_limit):
            return out
    return None


def _hr_relaxing(src: _Source, rest: float, tau: float, noise: float):
    def plan(i0: int, rel: np.ndarray, _dist: np.ndarray) -> np.ndarray:
        start = _last_finite(src.track.hr, i0)
        if not _recorded(src.track.hr) or not np.isfinite(start):
            return np.full(rel.size, np.nan)
        wander = src.gen.normal(0.0, noise, rel.size).cumsum() * 0.05
        return _whole(rest + (start - rest) * np.exp(-rel / tau) + wander)
    return plan


def _hr_along_route(src: _Source):
    def plan(i0: int, rel: np.ndarray, dist: np.ndarray) -> np.ndarray:
        if not _recorded(src.track.hr):
            return np.full(rel.size, np.nan)
        return _whole(_interp_finite(src.s[i0] + dist, src.s, src.track.hr))
    return plan


# -- the kinds ---------------------------------------------------------------------------------

def _vehicle(src: _Source, rng: random.Random) -> Track | None:
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


def _traffic(src: _Source, rng: random.Random) -> Track | None:
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


def _gap_lift(src: _Source, rng: random.Random) -> Track | None:
    tr = src.track
    if tr.sport != "run":
        return None
    total = src.length
    pace = _moving_speed(src)
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
        return _splice(tr, i0, empty, j1, tr.t[i0] + gap, hr_from=rest, hr_tau=rng.uniform(40.0, 90.0))
    return None


def _sample_columns(track: Track, tq: np.ndarray, max_step: float) -> dict[str, np.ndarray]:
    """Every column but time at source times ``tq``, linearly between recorded values; NaN
    where the nearest recorded values on either side are more than ``max_step`` apart."""
    out = {}
    for name in COLUMNS[1:]:
        values = getattr(track, name)
        ok = np.isfinite(values)
        if name == "lon":
            ok &= np.isfinite(track.lat)
        if name == "lat":
            ok &= np.isfinite(track.lon)
        if not ok.any():
            out[name] = np.full(tq.size, np.nan)
            continue
        xs, ys = track.t[ok], values[ok]
        col = np.interp(tq, xs, ys)
        k = np.clip(np.searchsorted(xs, tq), 1, max(1, xs.size - 1))
        exact = np.isin(tq, xs)
        wide = (xs[k] - xs[k - 1]) > max_step if xs.size > 1 else np.ones(tq.size, dtype=bool)
        outside = (tq < xs[0]) | (tq > xs[-1])
        col[(wide | outside) & ~exact] = np.nan
        if name in ("hr", "cad"):
            col = _whole(col)
        out[name] = col
    return out


def _retime(track: Track, lo: int, hi: int, factor: float, dt: float, new_lo_t: float
            ) -> tuple[dict[str, np.ndarray], float]:
    """Rows ``lo``..``hi`` with their elapsed time divided by ``factor``, resampled every ``dt``
    from ``new_lo_t`` but never across a pause; and the new time of row ``hi``."""
    t = track.t
    pause = max(PAUSE_S, 5 * dt, 5 * float(np.median(np.diff(t))))
    seg_t = t[lo: hi + 1]
    new_of = new_lo_t + (seg_t - seg_t[0]) / factor
    end_t = float(new_of[-1])
    breaks = np.flatnonzero(np.diff(seg_t) > pause)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [seg_t.size - 1]])
    times = []
    for a, b in zip(starts, ends):
        # Each stretch between pauses up to its own last point; the last stretch stops half an
        # interval short of row ``hi``, which the caller keeps.
        stop = new_of[b] + 1e-9 if b < seg_t.size - 1 else end_t - 0.5 * dt
        times.append(np.arange(new_of[a], stop, dt))
    new_t = np.concatenate(times)
    tq = seg_t[0] + (new_t - new_lo_t) * factor
    cols = _sample_columns(track, tq, pause)
    cols["t"] = new_t
    return cols, end_t


def _compressed(src: _Source, rng: random.Random) -> Track | None:
    tr = src.track
    n = len(tr)
    if rng.random() < 0.5:
        factor = rng.uniform(1.25, 1.6)
        rows = int(n * rng.choice((1 / 2, 1 / 3)))
        lo = rng.randint(0, n - 1 - rows)
        hi = lo + rows
    else:
        factor = rng.uniform(1.12, 1.35)
        lo, hi = 0, n - 1
    if hi - lo < 10:
        return None
    mid, end_t = _retime(tr, lo, hi, factor, src.dt, float(tr.t[lo]))
    if mid["t"].size < 2:
        return None
    head = tr.take(np.arange(lo))
    tail = tr.take(np.arange(hi, n))
    shift = end_t - tr.t[hi]
    cols = {name: np.concatenate([getattr(head, name), mid[name],
                                  getattr(tail, name) + (shift if name == "t" else 0.0)]) for name in COLUMNS}
    return _like(tr, cols)


def _says_run(track: Track) -> bool:
    """Whether the track's name (or a text in its meta) names a run: "Running", "run_", "jog"."""
    texts = [track.name or ""] + [v for v in track.meta.values() if isinstance(v, str)]
    return any(RUN_WORDS.search(text.lower()) for text in texts)


def _ride_as_run(src: _Source, rng: random.Random) -> Track | None:
    tr = src.track
    if tr.sport != "ride" or _says_run(tr) or _moving_speed(src) < 13.0 * KMH:
        return None
    out = tr
    if rng.random() < 0.6:
        interval = float(rng.randint(1, 5))
        if abs(interval - src.dt) > 0.25:
            mid, end_t = _retime(tr, 0, len(tr) - 1, 1.0, interval, float(tr.t[0]))
            last = tr.take(np.array([len(tr) - 1]))
            cols = {name: np.concatenate([mid[name], getattr(last, name)]) for name in COLUMNS}
            out = _like(tr, cols)
    cad = np.full(len(out), np.nan) if rng.random() < 0.75 else out.cad.copy()
    cols = {name: getattr(out, name).copy() for name in COLUMNS}
    cols["cad"] = cad
    return _like(tr, cols, sport="run")


def _teleport(src: _Source, rng: random.Random) -> Track | None:
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
    lat[rows], lon[rows] = _offset(lat[rows], lon[rows], reach * weight * math.sin(bearing),
                                   reach * weight * math.cos(bearing))
    cols = {name: getattr(tr, name).copy() for name in COLUMNS}
    cols["lat"], cols["lon"] = lat, lon
    return _like(tr, cols)


def _cut(src: _Source, rng: random.Random) -> Track | None:
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
        return _splice(tr, i0, empty, j1, tr.t[i0] + src.dt)
    return None


@dataclass
class _Climb:
    start: float  # route distance (m)
    end: float
    grid: np.ndarray  # route distances every CLIMB_GRID_M
    ele: np.ndarray  # smoothed elevation on the grid


CLIMB_GRID_M = 20.0
CLIMB_DROP_M = 15.0


def _steepest_climb(src: _Source) -> _Climb | None:
    """The stretch gaining most metres at over 3% average grade over at least 1 km, never
    dropping more than CLIMB_DROP_M below its highest point so far (one sustained climb)."""
    tr, fix = src.track, src.fix
    ele = tr.ele[fix]
    if np.isfinite(ele).mean() < 0.8 or src.length < 1000.0:
        return None
    grid = np.arange(0.0, src.length, CLIMB_GRID_M)
    smooth = _running(_running(_interp_finite(grid, src.s[fix], ele), 9, np.median), 11, np.mean)
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


def _climb_motor(src: _Source, rng: random.Random) -> Track | None:
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
    took = _moving_time(src, i0, j1)
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
        return v * shape * (1 + 0.04 * _smooth_wobble(src.gen, grade.size))

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
        jitter = _ar(src.gen, rel.size, src.dt, rng.uniform(15.0, 40.0)) * 0.5 * src.sigma
        mid = _rows(src, i0, rel, dist, jitter)
        where = src.s[i0] + dist
        if _recorded(tr.hr):
            relief = rng.uniform(0.0, 12.0) * np.minimum(1.0, rel / 60.0)
            mid["hr"] = _whole(_interp_finite(where, src.s, tr.hr) - relief)
        if _recorded(tr.cad):
            mid["cad"] = _whole(_interp_finite(where, src.s, tr.cad))
        if _recorded(tr.acc):
            mid["acc"] = _interp_finite(where, src.s, tr.acc)
        return _splice(tr, i0, mid, j1, tr.t[i0] + count * src.dt)
    return None


def _copy(src: _Source, rng: random.Random) -> Track | None:
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
    mid, end_t = _retime(tr, lo, hi, 1.0 / stretch, interval, float(tr.t[lo]) + later)
    last = tr.take(np.array([hi]))
    cols = {name: np.concatenate([mid[name], getattr(last, name)]) for name in COLUMNS}
    cols["t"][-1] = end_t
    bearing = rng.uniform(0.0, 2 * math.pi)
    shift = rng.uniform(3.0, 8.0)
    jitter = _ar(src.gen, cols["t"].size, interval, rng.uniform(5.0, 20.0)) * rng.uniform(2.0, 5.0)
    cols["lat"], cols["lon"] = _offset(cols["lat"], cols["lon"], shift * math.sin(bearing) + jitter[:, 0],
                                       shift * math.cos(bearing) + jitter[:, 1])
    return _like(tr, cols)


MAKERS: dict[str, Callable[[_Source, random.Random], Track | None]] = {
    "vehicle": _vehicle, "traffic": _traffic, "gap_lift": _gap_lift, "compressed": _compressed,
    "ride_as_run": _ride_as_run, "teleport": _teleport, "climb_motor": _climb_motor, "copy": _copy,
}
