"""Summary statistics of a cleaned track: distance, times, pace, splits, bests, climbing.

How distance is measured, and why:
- Pauses: the recording's time axis has gaps where the athlete or the device paused. A gap
  longer than ``max(PAUSE_GAP_S, 4 x the usual sampling interval)`` is a pause: its time is
  not moving time, and the straight line across it counts as distance only if covering it
  took a plausible moving speed (a device that logs sparsely while riding on).
- Jitter: on densely sampled tracks (about one fix a second) the fixes wander by a metre or
  two around the true path, which inflates a plain point-to-point sum by 1-5%. A 5-point
  running median of latitude and longitude removes single-fix outliers without cutting
  corners, and fixes closer than ``THIN_DISTANCE_M`` and ``THIN_TIME_S`` to the last kept
  fix are skipped, so standing-still wander and sub-metre zig-zags add nothing.
- Sampling: sparse fixes (every 5-10 s) cut the corners of the real path. The arc length of
  a centripetal Catmull-Rom spline through the fixes recovers part of it, capped at
  ``MAX_CORNER_GAIN`` per step so a noisy fix cannot inflate a step.
No per-device factors and no global scaling: everything comes from the fixes themselves.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.tracks.cleaning import MAX_SPEED_MPS, CleanTrack
from core.tracks.geo import local_xy, segment_lengths_m

PAUSE_GAP_S = 20.0
MEDIAN_WINDOW_POINTS = 5
DENSE_INTERVAL_S = 1.0
THIN_DISTANCE_M = 8.0
THIN_TIME_S = 3.0
MAX_CORNER_GAIN = 0.05
SPLINE_SUBSTEPS = 8
# Crossing a pause gap slower than this means the athlete was not moving on.
MIN_MOVING_SPEED_MPS = {"run": 0.7, "walk": 0.7, "ride": 1.5, "other": 1.5}
MAX_SPEED_WINDOW_S = 5.0
# Standing still: every fix within this window has wandered less than this (RMS) from the
# window's centre. A runner turning round covers 40 m or more in that time.
STOP_WINDOW_S = 15.0
STOP_SPREAD_M = 3.0
# Sparse logging (a fix every 5 s or more) shows too little wander to judge a stop by.
STOP_MIN_POINTS = 10
ELEVATION_HYSTERESIS_M = 3.0
BEST_EFFORT_DISTANCES_M = (400, 1000, 5000, 10000)


@dataclass
class Split:
    """One kilometre or mile (or the final part of one) of the activity; its pace is per
    kilometre whatever the split's length."""

    index: int
    distance_m: float
    moving_time_s: float
    pace_s_per_km: float | None


@dataclass
class Summary:
    """What an activity's card, page and leaderboards show."""

    sport: str
    distance_m: float
    moving_time_s: float
    elapsed_time_s: float
    avg_pace_s_per_km: float | None
    avg_speed_mps: float | None
    max_speed_mps: float | None
    best_pace_1km_s_per_km: float | None
    elevation_gain_m: float | None
    elevation_loss_m: float | None
    avg_hr_bpm: float | None
    max_hr_bpm: float | None
    points: int
    gps_points: int
    start_time: float | None
    end_time: float | None
    dropped: dict = field(default_factory=dict)
    splits: list[Split] = field(default_factory=list)
    best_efforts_s: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class Profile:
    """Per-point series of the GPS path (for charts, splits and best efforts)."""

    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    cum_distance_m: np.ndarray
    cum_moving_s: np.ndarray
    speed_mps: np.ndarray


def pause_gap_s(times: np.ndarray) -> float:
    """The shortest gap in the time axis that counts as a pause."""
    if times.size < 2:
        return PAUSE_GAP_S
    steps = np.diff(times)
    steps = steps[steps > 0]
    typical = float(np.median(steps)) if steps.size else 1.0
    return max(PAUSE_GAP_S, 4.0 * typical)


def moving_time_s(times: np.ndarray, gap_s: float, pauses=None) -> float:
    """Recording time with the pauses (gaps over gap_s, explicit pauses) taken out."""
    if times.size < 2:
        return 0.0
    steps = np.diff(times)
    counted = (steps <= gap_s) & ~_crosses_pause(times[:-1], times[1:], pauses)
    return float(steps[counted].sum())


def _median_filtered(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    half = MEDIAN_WINDOW_POINTS // 2
    if x.size <= 2 * half:
        return x
    dense = (t[2 * half:] - t[:-2 * half]) <= DENSE_INTERVAL_S * 2 * half
    medians = np.median(sliding_window_view(x, MEDIAN_WINDOW_POINTS), axis=1)
    out = x.copy()
    out[half:-half] = np.where(dense, medians, x[half:-half])
    return out


def stopped_mask(t: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Fixes taken while standing still (GPS wander within STOP_SPREAD_M around a spot)."""
    n = t.size
    if n < 3:
        return np.zeros(n, dtype=bool)
    x, y = local_xy(lat, lon)
    lo = np.searchsorted(t, t - STOP_WINDOW_S, side="left")
    hi = np.searchsorted(t, t + STOP_WINDOW_S, side="right")
    count = hi - lo

    def window_mean(values: np.ndarray) -> np.ndarray:
        # Subtract the first value so squares stay small and the sums exact enough.
        cs = np.concatenate([[0.0], np.cumsum(values - values[0])])
        return (cs[hi] - cs[lo]) / count + values[0]

    var = (window_mean(x * x) - window_mean(x) ** 2) + (window_mean(y * y) - window_mean(y) ** 2)
    span = t[hi - 1] - t[lo]
    return (np.sqrt(np.clip(var, 0, None)) < STOP_SPREAD_M) & (span >= STOP_WINDOW_S) & (count >= STOP_MIN_POINTS)


def _thinned(t: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Indices of the fixes kept after skipping those too close to the last kept one."""
    n = t.size
    if n < 3:
        return np.arange(n)
    # Compare every fix with the last kept one in local metres, in a single pass.
    east, north = local_xy(lat, lon)
    x, y, tt = east.tolist(), north.tolist(), t.tolist()
    keep = [0]
    ax, ay, at = x[0], y[0], tt[0]
    min_d2 = THIN_DISTANCE_M ** 2
    for i in range(1, n - 1):
        dx, dy = x[i] - ax, y[i] - ay
        if dx * dx + dy * dy >= min_d2 or tt[i] - at >= THIN_TIME_S:
            keep.append(i)
            ax, ay, at = x[i], y[i], tt[i]
    keep.append(n - 1)
    return np.asarray(keep)


def _corner_factors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Per step, spline arc length over chord length, between 1 and 1 + MAX_CORNER_GAIN."""
    n = lat.size
    if n < 3:
        return np.ones(max(n - 1, 0))
    p = np.column_stack(local_xy(lat, lon))
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    p0, p1, p2, p3 = p[:-3], p[1:-2], p[2:-1], p[3:]
    arc = np.zeros(len(p1))
    prev = p1
    for s in np.linspace(0.0, 1.0, SPLINE_SUBSTEPS + 1)[1:]:
        s2, s3 = s * s, s * s * s
        q = 0.5 * (2 * p1 + (p2 - p0) * s + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s2
                   + (3 * p1 - p0 - 3 * p2 + p3) * s3)
        arc += np.hypot(*(q - prev).T)
        prev = q
    chord = np.hypot(*(p2 - p1).T)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(chord > 0, arc / chord, 1.0)
    return np.clip(ratio, 1.0, 1.0 + MAX_CORNER_GAIN)


def _crosses_pause(start: np.ndarray, end: np.ndarray, pauses) -> np.ndarray:
    """Steps from start to end that overlap an explicit pause (the athlete pressed pause)."""
    out = np.zeros(start.size, dtype=bool)
    for p_start, p_end in pauses or ():
        out |= (start < p_end) & (end > p_start)
    return out


def build_profile(clean: CleanTrack, pauses=None) -> tuple[Profile, float]:
    """The per-point profile of a cleaned track and the pause threshold used.

    ``pauses`` are (start, end) times when the athlete paused the recording: steps across
    them count for neither distance nor moving time, however fast they were.
    """
    t, lat, lon = clean.t, clean.lat, clean.lon
    gap = pause_gap_s(clean.times if clean.times.size else t)
    n = t.size
    if n < 2:
        zeros = np.zeros(n)
        return Profile(t, lat, lon, zeros, zeros.copy(), zeros.copy()), gap
    flat = _median_filtered(t, lat), _median_filtered(t, lon)
    keep = _thinned(t, *flat)
    klat, klon, kt = flat[0][keep], flat[1][keep], t[keep]
    raw_steps = segment_lengths_m(lat[keep], lon[keep])
    steps = segment_lengths_m(klat, klon) * _corner_factors(klat, klon)
    dts = np.diff(kt)
    vmax = MAX_SPEED_MPS.get(clean.sport, MAX_SPEED_MPS["other"])
    vmin = MIN_MOVING_SPEED_MPS.get(clean.sport, MIN_MOVING_SPEED_MPS["other"])
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing_speed = raw_steps / dts
    paused = (dts > gap) & ((crossing_speed < vmin) | (crossing_speed > vmax))
    stopped = stopped_mask(kt, klat, klon)
    paused |= _crosses_pause(kt[:-1], kt[1:], pauses)
    steps = np.where(paused | (stopped[:-1] & stopped[1:]), 0.0, steps)
    cum_kept = np.concatenate([[0.0], np.cumsum(steps)])
    cum_distance = np.interp(t, kt, cum_kept)

    axis = clean.times if clean.times.size >= 2 else t
    axis_steps = np.diff(axis)
    counted = (axis_steps <= gap) & ~_crosses_pause(axis[:-1], axis[1:], pauses)
    cum_axis = np.concatenate([[0.0], np.cumsum(np.where(counted, axis_steps, 0.0))])
    cum_moving = np.interp(t, axis, cum_axis)
    speed = _windowed_speed(t, cum_distance, cum_moving)
    return Profile(t, lat, lon, cum_distance, cum_moving, speed), gap


def _windowed_speed(t: np.ndarray, dist: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Speed at each point over a window of at least MAX_SPEED_WINDOW_S of moving time."""
    if t.size < 2:
        return np.zeros(t.size)
    target = moving - MAX_SPEED_WINDOW_S
    start = np.searchsorted(moving, target, side="right") - 1
    start = np.clip(start, 0, None)
    span = moving - moving[start]
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where(span >= MAX_SPEED_WINDOW_S * 0.8, (dist - dist[start]) / span, np.nan)
    return speed


def best_effort_s(profile: Profile, distance_m: float) -> float | None:
    """Fastest moving time over any stretch of ``distance_m`` metres."""
    d, m = profile.cum_distance_m, profile.cum_moving_s
    if d.size < 2 or d[-1] < distance_m:
        return None
    ends = np.flatnonzero(d >= distance_m)
    # d is non-decreasing, so np.interp gives the moving time when the stretch started.
    started = np.interp(d[ends] - distance_m, d, m)
    times = m[ends] - started
    times = times[times > 0]
    return float(times.min()) if times.size else None


def splits(profile: Profile, split_m: float = 1000.0) -> list[Split]:
    """Moving time of each whole ``split_m`` (a kilometre, or ``core.units.MILE_M`` for
    imperial splits), then of the remainder (left out when under a metre)."""
    d, m = profile.cum_distance_m, profile.cum_moving_s
    if d.size < 2 or d[-1] <= 0:
        return []
    marks = np.arange(split_m, d[-1], split_m)
    bounds = np.concatenate([[0.0], marks, [d[-1]]])
    at = np.interp(bounds, d, m)
    out = []
    for k in range(len(bounds) - 1):
        dist = float(bounds[k + 1] - bounds[k])
        secs = float(at[k + 1] - at[k])
        if dist < 1.0:
            continue
        out.append(Split(k + 1, dist, secs, secs / (dist / 1000.0) if dist > 0 else None))
    return out


def elevation_change_m(ele: np.ndarray) -> tuple[float | None, float | None]:
    """Total climb and descent, counting only moves beyond a hysteresis band."""
    values = ele[np.isfinite(ele)]
    if values.size < 2:
        return None, None
    gain = loss = 0.0
    ref = float(values[0])
    for v in values[1:].tolist():
        if v - ref >= ELEVATION_HYSTERESIS_M:
            gain += v - ref
            ref = v
        elif ref - v >= ELEVATION_HYSTERESIS_M:
            loss += ref - v
            ref = v
    return gain, loss


def summarise(clean: CleanTrack, points: int | None = None, pauses=None) -> Summary:
    """Compute the whole summary of a cleaned track (``pauses``: explicit pause intervals)."""
    profile, gap = build_profile(clean, pauses)
    axis = clean.times if clean.times.size else clean.t
    distance = float(profile.cum_distance_m[-1]) if profile.t.size else 0.0
    moving = moving_time_s(axis, gap, pauses)
    elapsed = float(axis[-1] - axis[0]) if axis.size >= 2 else 0.0
    pace = moving / (distance / 1000.0) if distance >= 10 and moving > 0 else None
    speed = distance / moving if moving > 0 else None
    finite_speed = profile.speed_mps[np.isfinite(profile.speed_mps)]
    gain, loss = elevation_change_m(clean.ele)
    hr = clean.hr[np.isfinite(clean.hr)]
    bests = {str(d): best_effort_s(profile, d) for d in BEST_EFFORT_DISTANCES_M}
    best_km = bests.get("1000")
    return Summary(
        sport=clean.sport,
        distance_m=distance,
        moving_time_s=moving,
        elapsed_time_s=elapsed,
        avg_pace_s_per_km=pace,
        avg_speed_mps=speed,
        max_speed_mps=float(finite_speed.max()) if finite_speed.size else None,
        best_pace_1km_s_per_km=best_km,
        elevation_gain_m=gain,
        elevation_loss_m=loss,
        avg_hr_bpm=float(hr.mean()) if hr.size else None,
        max_hr_bpm=float(hr.max()) if hr.size else None,
        points=int(points if points is not None else axis.size),
        gps_points=int(clean.t.size),
        start_time=float(axis[0]) if axis.size else None,
        end_time=float(axis[-1]) if axis.size else None,
        dropped=dict(clean.dropped),
        splits=splits(profile),
        best_efforts_s={k: v for k, v in bests.items() if v is not None},
    )
