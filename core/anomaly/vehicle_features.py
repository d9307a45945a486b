"""The vehicle model's windows: a recording cut into two-minute windows, each one row of
features measured for what a motor does that legs cannot (``core.anomaly.vehicle`` is the
classifier that reads them).

The cleaned track (cleaned with the ride's glitch limit, so a car's speeds are not cut as
glitches) is put on a one-second grid over its recorded stretches (each recording gap, a
step longer than the track's pause threshold ``core.tracks.stats.pause_gap_s``, stands as
``GAP_PAD_S`` empty seconds) and cut into windows of ``WINDOW_S`` seconds every ``HOP_S``
seconds. A window mostly inside gaps or mostly standing still is skipped. Each remaining
window gets one row of ``FEATURES``, measured on positions smoothed over ``SMOOTH_S``
seconds (or two fixes, if sparser) so that a watch's jitter at 1 s and a logger's fixes
every 5 s read alike:

- acceleration at speed (95th percentile where v > 3 m/s) and jerk: a car pulls away at
  2-3 m/s² at 10-15 m/s, where a rider's power allows a fraction of a m/s²;
- the least specific power (W/kg) a tucked rider would need for the motion: acceleration,
  rolling resistance and air drag, less what a descent gives where elevation is recorded.
  A rider's fast descent costs little; holding 60 km/h on the flat costs more than anyone
  sustains. Climbs are not counted, since elevation noise would read as power;
- the mechanical energy gained (speed picked up beyond what a descent gave);
- stop patterns: share of time stopped, stops in the window (with hysteresis), the speed
  gained in the 10 s after leaving a stop, the most speed gained in any 10 s;
- speed steadiness (coefficient of variation) and lateral acceleration in corners (speed
  against turn radius).

The rows also carry, for people to read, the median and 95th-percentile speeds and heart
rate against speed (metres per beat and mean heart rate, NaN where not recorded).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.anomaly.signals import CRR, RHO, SYSTEM_KG, G
from core.tracks.cleaning import clean_track
from core.tracks.geo import local_xy
from core.tracks.stats import pause_gap_s
from core.tracks.track import Track

WINDOW_S = 120
HOP_S = 60
SMOOTH_S = 5  # positions averaged over this many seconds before any derivative
DIFF_S = 2  # derivatives are central differences over +- this many seconds
MOVING_MPS = 1.0
STOP_MPS = 0.5  # below this a second counts as stopped
GO_MPS = 2.0  # above this as going (hysteresis between the two for counting stops)
AT_SPEED_MPS = 3.0  # accelerations, jerk and cornering are read where faster than this
LAUNCH_FROM_MPS = 1.5
LAUNCH_S = 10
MIN_MOVING_SHARE = 0.2  # a window moving less than this share of its seconds is skipped
MAX_GAP_SHARE = 0.5  # a window with more than this share inside recording gaps is skipped
MIN_AT_SPEED_S = 10  # seconds at speed needed for the acceleration percentiles
TUCK_CDA_M2 = 0.25  # a rider tucked low on a road bike (a solo rider sitting up: 0.35)
SHORT_WINDOW = 15  # box means up to this many samples convolve; longer ones use cumulative sums
GAP_PAD_S = 64  # a recording gap on the grid: longer than any smoothing reaches
ELE_MEDIAN_FIXES = 9
ELE_MEAN_S = 61
JUMP_MPS = 90.0  # a step faster than this is a jump, treated as a gap
MAX_STEP_S = 30.0  # a step longer than this is a gap whatever the device's usual interval
MAX_RECORDED_S = 48 * 3600.0  # a recording longer than this (when logged) is not judged here
HR_MIN_SHARE = 0.5

FEATURES = (
    "v_p50", "v_p95", "v_cv",
    "acc_up_p95", "jerk_p90",
    "power_mean", "power_p90", "energy_gain_p95",
    "stop_share", "stops", "launch_dv10", "dv10_max",
    "lat_p95",
    "m_per_beat", "hr_mean",
)


@dataclass
class Windows:
    """The kept windows of one track: feature rows, (t0, t1, metres), the cumulative
    distance at each window's start and each window's place in the full sequence."""

    rows: np.ndarray
    spans: list[tuple[float, float, float]]
    d0: np.ndarray
    seq: np.ndarray


def _empty() -> Windows:
    return Windows(np.empty((0, len(FEATURES))), [], np.empty(0), np.empty(0, dtype=int))


def _centred_diff(x: np.ndarray, h: int) -> np.ndarray:
    """(x[i + h] - x[i - h]) / 2h, NaN at the ends."""
    out = np.full(x.size, np.nan)
    if x.size > 2 * h:
        out[h:-h] = (x[2 * h:] - x[:-2 * h]) / (2 * h)
    return out


def _box_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Centred mean over ``window`` samples (a short convolution, or cumulative sums for
    long windows), NaN-aware: NaN where fewer than 60% of the samples are valid."""
    ok = np.isfinite(x)
    if window <= SHORT_WINDOW:
        kernel = np.ones(window)
        total = np.convolve(np.where(ok, x, 0.0), kernel, mode="same")
        count = np.convolve(ok.astype(float), kernel, mode="same")
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(count >= window * 0.6, total / count, np.nan)
    half = window // 2
    total = np.concatenate([[0.0], np.cumsum(np.where(ok, x, 0.0))])
    count = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(x.size)
    lo = np.clip(idx - half, 0, x.size)
    hi = np.clip(idx - half + window, 0, x.size)
    n = count[hi] - count[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= window * 0.6, (total[hi] - total[lo]) / n, np.nan)


def _grid(t: np.ndarray, broken: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One-second grid times over the recorded stretches between gaps (``broken`` steps),
    with GAP_PAD_S padding seconds standing for each gap (and marked in the second array):
    nothing is computed over the hours a device was off, and no smoothing reaches across.
    A padding second carries the time of the fix before the gap."""
    cuts = np.flatnonzero(broken)
    first = np.concatenate([[0], cuts + 1])
    last = np.concatenate([cuts, [t.size - 1]])
    lengths = np.floor(t[last] - t[first]).astype(int) + 1
    spans = lengths + GAP_PAD_S
    spans[-1] = lengths[-1]
    begin = np.concatenate([[0], np.cumsum(spans)[:-1]])
    total = int(spans.sum())
    offset = np.arange(total) - np.repeat(begin, spans)
    seg_t0 = np.repeat(t[first], spans)
    seg_t1 = np.repeat(t[last], spans)
    pad = offset >= np.repeat(lengths, spans)
    grid = np.where(pad, seg_t1, seg_t0 + offset)
    return grid.astype(float), pad


def _elevation(t: np.ndarray, ele: np.ndarray, grid: np.ndarray, pad: np.ndarray) -> np.ndarray | None:
    """Elevation on the grid: a median over ELE_MEDIAN_FIXES fixes (steps and spikes out),
    then a mean over ELE_MEAN_S seconds; None when too little was recorded."""
    ok = np.isfinite(ele)
    if ok.sum() < max(10, 0.8 * ele.size):
        return None
    te, e = t[ok], ele[ok]
    if e.size >= ELE_MEDIAN_FIXES:
        half = ELE_MEDIAN_FIXES // 2
        e = np.median(sliding_window_view(np.pad(e, half, mode="edge"), ELE_MEDIAN_FIXES), axis=1)
    return _box_mean(np.where(pad, np.nan, np.interp(grid, te, e)), ELE_MEAN_S)


def _ahead(x: np.ndarray, k: int) -> np.ndarray:
    """x[i + k] at i (NaN past the end)."""
    out = np.full(x.size, np.nan)
    if x.size > k:
        out[:-k] = x[k:]
    return out


def _row_quantile(m: np.ndarray, q: float, min_count: int = 1) -> np.ndarray:
    """The q-quantile (nearest rank) of each row's finite values; NaN with too few."""
    s = np.sort(m, axis=1)  # NaN sorts last
    n = np.isfinite(m).sum(axis=1)
    k = np.clip(np.round(q * (n - 1)).astype(int), 0, m.shape[1] - 1)
    out = s[np.arange(m.shape[0]), k]
    return np.where(n >= min_count, out, np.nan)


def _row_stat(m: np.ndarray, fn, min_count: int = 1) -> np.ndarray:
    """A NaN-aware reduction (np.nanmax, np.nanmean, ...) of each row; NaN with too few."""
    n = np.isfinite(m).sum(axis=1)
    out = np.full(m.shape[0], np.nan)
    ok = n >= min_count
    if ok.any():
        out[ok] = fn(m[ok], axis=1)
    return out

@dataclass
class _Grid:
    """A cleaned track on the one-second grid: the grid's times, which seconds stand for
    gaps, the smoothing width, the smoothed positions (m), the distance covered (m), the
    elevation (None when too little was recorded) and the heart rate (None likewise)."""

    t: np.ndarray
    in_gap: np.ndarray
    smooth: int
    x: np.ndarray
    y: np.ndarray
    dist: np.ndarray
    ele: np.ndarray | None
    hr: np.ndarray | None


def _on_grid(track: Track) -> _Grid | None:
    """Clean ``track`` as a ride and put it on the grid; None when too little was recorded
    (or, with its clock, too much) for one window."""
    clean = clean_track(replace(track, sport="ride"))
    t, lat, lon = clean.t, clean.lat, clean.lon
    if t.size < 8 or t[-1] - t[0] < WINDOW_S:
        return None
    x, y = local_xy(lat, lon)
    steps = np.hypot(np.diff(x), np.diff(y))
    dts = np.diff(t)
    gap = min(pause_gap_s(t), MAX_STEP_S)
    with np.errstate(divide="ignore", invalid="ignore"):
        broken = (dts > gap) | (steps > JUMP_MPS * dts)
    # Seconds on the grid: only what lies between fixes at most MAX_STEP_S apart (a file of
    # fixes hours apart would otherwise make a grid of millions of empty seconds).
    recorded = float(np.where(broken, 0.0, dts).sum())
    if recorded < WINDOW_S or recorded > MAX_RECORDED_S:
        return None
    dist = np.concatenate([[0.0], np.cumsum(np.where(broken, 0.0, steps))])

    grid, in_gap = _grid(t, broken)
    # Smooth over at least two fixes: a sparse logger's rounded timestamps make single steps
    # alternate between too fast and too slow.
    positive = dts[dts > 0]
    smooth = max(SMOOTH_S, int(round(2 * float(np.median(positive))))) if positive.size else SMOOTH_S
    gx = _box_mean(np.where(in_gap, np.nan, np.interp(grid, t, x)), smooth)
    gy = _box_mean(np.where(in_gap, np.nan, np.interp(grid, t, y)), smooth)
    return _Grid(grid, in_gap, smooth, gx, gy, np.interp(grid, t, dist),
                 _elevation(t, clean.ele, grid, in_gap), _heart_rate(clean, grid))


def _heart_rate(clean: Track, grid: np.ndarray) -> np.ndarray | None:
    """Heart rate on the grid from its plausible values; None when too few were recorded."""
    hr = clean.hr
    hr_ok = np.isfinite(hr) & (hr > 40) & (hr < 230)
    if hr_ok.sum() >= max(30, HR_MIN_SHARE * hr.size):
        return np.interp(grid, clean.t[hr_ok], hr[hr_ok])
    return None


@dataclass
class _Motion:
    """Per grid second: smoothed speed (m/s), acceleration, jerk, lateral acceleration, the
    mechanical energy gained per kg and second, and the least power (W/kg) a rider needs."""

    v: np.ndarray
    a: np.ndarray
    jerk: np.ndarray
    lateral: np.ndarray
    energy: np.ndarray
    power: np.ndarray


def _motion(g: _Grid) -> _Motion:
    """Speeds and their derivatives from the smoothed positions, and what they cost."""
    vx, vy = _centred_diff(g.x, DIFF_S), _centred_diff(g.y, DIFF_S)
    v = np.hypot(vx, vy)
    v[g.in_gap] = np.nan
    vs = _box_mean(v, g.smooth)
    a = _centred_diff(vs, DIFF_S)
    jerk = _centred_diff(_box_mean(a, g.smooth), DIFF_S)
    ax, ay = _centred_diff(vx, DIFF_S), _centred_diff(vy, DIFF_S)
    with np.errstate(divide="ignore", invalid="ignore"):
        lateral = np.abs(vx * ay - vy * ax) / v

    vz = _centred_diff(g.ele, 5) if g.ele is not None else np.zeros(g.t.size)
    # Only a descent counts: it gives speed for free. A climb is not counted as effort, since
    # elevation noise would otherwise read as power no motor delivered.
    vz = np.minimum(np.nan_to_num(vz), 0.0)
    # The least specific power (W/kg) a tucked rider on a road bike would need: gravity counted
    # where elevation is known, so a descent's speed costs little.
    resist = G * CRR * vs + 0.5 * RHO * TUCK_CDA_M2 * vs ** 3 / SYSTEM_KG
    energy = vs * a + G * vz  # mechanical energy gained per kg and second
    return _Motion(vs, a, jerk, lateral, energy, energy + resist)


@dataclass
class _Stops:
    """Per grid second: 1 where a stop begins, the speed gained over the next LAUNCH_S
    seconds, and the same only where starting from below LAUNCH_FROM_MPS."""

    onset: np.ndarray
    dv10: np.ndarray
    launch: np.ndarray


def _stops(vs: np.ndarray) -> _Stops:
    """Stops, with hysteresis: stopped below STOP_MPS until going again above GO_MPS."""
    n = vs.size
    state = np.where(vs < STOP_MPS, 0.0, np.where(vs > GO_MPS, 1.0, np.nan))
    known = np.where(np.isfinite(state), np.arange(n), 0)
    filled = state[np.maximum.accumulate(known)]
    onset = np.zeros(n)
    onset[1:] = (filled[1:] == 0) & (filled[:-1] == 1)
    dv10 = _ahead(vs, LAUNCH_S) - vs
    return _Stops(onset, dv10, np.where(vs < LAUNCH_FROM_MPS, dv10, np.nan))


@dataclass
class _Kept:
    """The kept windows: grid seconds (one row each), first seconds, places in the full
    sequence, which seconds are valid, moving and at speed, and their speeds."""

    idx: np.ndarray
    starts: np.ndarray
    seq: np.ndarray
    valid: np.ndarray
    moving: np.ndarray
    at_speed: np.ndarray
    v: np.ndarray


def _kept(in_gap: np.ndarray, vs: np.ndarray) -> _Kept | None:
    """Windows every HOP_S, plus one ending at the last second, without those mostly in gaps
    or mostly standing still; None when none is left."""
    n = vs.size
    starts = list(range(0, n - WINDOW_S + 1, HOP_S))
    if starts and starts[-1] != n - WINDOW_S:
        starts.append(n - WINDOW_S)
    if not starts:
        return None
    starts = np.asarray(starts)
    idx = starts[:, None] + np.arange(WINDOW_S)

    gap_w = in_gap[idx]
    v_w = vs[idx]
    valid = ~gap_w & np.isfinite(v_w)
    moving = valid & (v_w > MOVING_MPS)
    keep = (gap_w.mean(axis=1) <= MAX_GAP_SHARE) & (moving.mean(axis=1) >= MIN_MOVING_SHARE)
    if not keep.any():
        return None
    idx, starts, valid, moving, v_w = idx[keep], starts[keep], valid[keep], moving[keep], v_w[keep]
    return _Kept(idx, starts, np.flatnonzero(keep), valid, moving, valid & (v_w > AT_SPEED_MPS), v_w)


def _feature_rows(w: _Kept, m: _Motion, s: _Stops, hr: np.ndarray | None) -> np.ndarray:
    """One row of FEATURES per kept window."""

    def take(series: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.where(mask, series[w.idx], np.nan)

    valid, moving, at_speed = w.valid, w.moving, w.at_speed
    cols: dict[str, np.ndarray] = {}
    vm = np.where(moving, w.v, np.nan)
    cols["v_p50"] = _row_quantile(vm, 0.5)
    cols["v_p95"] = _row_quantile(vm, 0.95)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["v_cv"] = _row_stat(vm, np.nanstd) / _row_stat(vm, np.nanmean)
    acc = take(m.a, at_speed)
    cols["acc_up_p95"] = _row_quantile(acc, 0.95, MIN_AT_SPEED_S)
    cols["jerk_p90"] = _row_quantile(np.abs(take(m.jerk, at_speed)), 0.9, MIN_AT_SPEED_S)
    pw = take(m.power, valid)
    cols["power_mean"] = _row_stat(pw, np.nanmean, MIN_AT_SPEED_S)
    cols["power_p90"] = _row_quantile(pw, 0.9, MIN_AT_SPEED_S)
    cols["energy_gain_p95"] = _row_quantile(take(m.energy, valid), 0.95, MIN_AT_SPEED_S)
    stopped = valid & (w.v < STOP_MPS)
    cols["stop_share"] = stopped.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    cols["stops"] = s.onset[w.idx].sum(axis=1).astype(float)
    cols["launch_dv10"] = _row_stat(take(s.launch, valid), np.nanmax)
    cols["dv10_max"] = _row_stat(take(s.dv10, valid), np.nanmax)
    cols["lat_p95"] = _row_quantile(take(m.lateral, at_speed), 0.95, MIN_AT_SPEED_S)
    if hr is not None:
        hm = take(hr, moving)
        cols["hr_mean"] = _row_stat(hm, np.nanmean, 30)
        cols["m_per_beat"] = cols["v_p50"] * 60.0 / cols["hr_mean"]
    else:
        cols["hr_mean"] = cols["m_per_beat"] = np.full(w.starts.size, np.nan)
    return np.column_stack([cols[name] for name in FEATURES])


def track_windows(track: Track) -> Windows:
    """Clean ``track`` as a ride, put it on a 1 s grid and compute each kept window's row."""
    g = _on_grid(track)
    if g is None:
        return _empty()
    m = _motion(g)
    w = _kept(g.in_gap, m.v)
    if w is None:
        return _empty()
    rows = _feature_rows(w, m, _stops(m.v), g.hr)
    d0 = g.dist[w.starts]
    d1 = g.dist[w.starts + WINDOW_S - 1]
    # Each window's first and last recorded second (a window may begin or end in a gap).
    real = ~g.in_gap[w.idx]
    first = w.idx[np.arange(w.idx.shape[0]), np.argmax(real, axis=1)]
    last = w.idx[np.arange(w.idx.shape[0]), WINDOW_S - 1 - np.argmax(real[:, ::-1], axis=1)]
    spans = [(float(a), float(b), float(d)) for a, b, d in zip(g.t[first].tolist(), g.t[last].tolist(),
                                                               (d1 - d0).tolist())]
    return Windows(rows, spans, d0, w.seq)


def stretch_features(track: Track) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """One row of ``FEATURES`` per kept window of the cleaned track, and each window's
    (t0, t1, metres). A track shorter than a window, or standing still, gives none."""
    w = track_windows(track)
    return w.rows, w.spans
