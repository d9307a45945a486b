"""A learned vehicle model: which stretches of a recording were driven by a motor vehicle
rather than run or ridden by a person.

The cleaned track (cleaned with the ride's glitch limit, so a car's speeds are not cut as
glitches) is put on a one-second grid over its recorded stretches (each recording gap, a
step longer than the track's pause threshold ``core.tracks.stats.pause_gap_s``, stands as
``GAP_PAD_S`` empty seconds) and cut into windows of ``WINDOW_S`` seconds every ``HOP_S``
seconds. A window mostly inside gaps or mostly standing still is skipped. Each remaining
window gets one row of ``FEATURES``, measured on positions smoothed over ``SMOOTH_S``
seconds (or two fixes, if sparser) so that a watch's jitter at 1 s and a logger's fixes
every 5 s read alike. The classifier reads ``MODEL_FEATURES``, chosen for what a motor
does that legs cannot:

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
rate against speed (metres per beat and mean heart rate, NaN where not recorded). The
classifier reads none of them. Speed alone is no evidence (a fast descent on a bike reaches
car speeds, a car in town runs at bike speeds); it enters only through the power it costs.
Slowing down needs no motor, so braking is not read either. No drive in the training corpus
carries heart rate, so a model given it could only learn that a recorded heart rate means a
person: a sensor artefact, not physiology.

A stretch is a run of at least ``MIN_WINDOWS`` consecutive windows at or above the
threshold (three minutes or more): vehicle stretches last minutes, while a single window
can be one hairpin or one glitch.

Training (``VehicleModel.train``) sees every recording at its own sampling and, where the
result is no sparser than ``MAX_AUGMENT_DT_S``, thinned to every 2nd, 3rd and 5th fix:
all real drives are logged at 1 Hz while many people's devices log every 3-5 s, and
without the thinned copies the classifier could tell the two apart by the logging rate.

Classifier: scikit-learn's GradientBoostingClassifier (200 trees of depth 3, learning rate
0.05, subsample 0.8, fixed seed; classes weighted to equal total weight; a missing value
becomes ``MISSING``, below every real value). In the grouped evaluation (5 folds, seed 0)
it found 18 of 20 drives with no human recording flagged. HistGradientBoostingClassifier
with the same features found 19 drives but flagged 3 of 49 human recordings, its
thresholds all at the cap. Gradient boosting also predicts in a single thread:
HistGradientBoosting's OpenMP threads stall on a busy machine, and a 100-tree random
forest spent 25-35 ms on one activity's windows. ``classifier="hgb"`` keeps the
comparison reproducible.

Threshold: chosen on training data only, by an inner grouped cross-validation
(``INNER_FOLDS`` folds by recording): the lowest probability at which at most
``MAX_HUMAN_SHARE`` of the inner held-out human recordings would have a stretch, within
[``MIN_THRESHOLD``, ``MAX_THRESHOLD``]. Folds come from a CRC-32 of the group name, so
the split is the same on every run.
"""

from __future__ import annotations

import math
import os
import platform
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.anomaly.signals import CRR, RHO, SYSTEM_KG, G
from core.anomaly.training import REAL_POSITIVES, real_recordings
from core.tracks.cleaning import clean_track
from core.tracks.formats import FORMATS, TrackFileError, load_track
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
MAX_AUGMENT_DT_S = 5.5
AUGMENT_STRIDES = (2, 3, 5)

FEATURES = (
    "v_p50", "v_p95", "v_cv",
    "acc_up_p95", "jerk_p90",
    "power_mean", "power_p90", "energy_gain_p95",
    "stop_share", "stops", "launch_dv10", "dv10_max",
    "lat_p95",
    "m_per_beat", "hr_mean",
)
# What the classifier reads: what a motor does that legs cannot. Speeds, braking and heart
# rate stay in the rows for people to read, not for the model (see the module's docstring).
MODEL_FEATURES = (
    "v_cv", "acc_up_p95", "jerk_p90", "power_mean", "power_p90", "energy_gain_p95",
    "stop_share", "stops", "launch_dv10", "dv10_max", "lat_p95",
)
MIN_WINDOWS = 2  # a stretch holds at least this many consecutive flagged windows

INNER_FOLDS = 3
MAX_HUMAN_SHARE = 0.01
MIN_THRESHOLD = 0.5
MAX_THRESHOLD = 0.995
MISSING = -1e3  # a missing value, for the trees below every real one
CLASSIFIERS = ("gb", "hgb")
GB_PARAMS = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8}
HGB_PARAMS = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 20,
              "l2_regularization": 1.0, "early_stopping": False}


# Features ---------------------------------------------------------------------------------


@dataclass
class _Windows:
    """The kept windows of one track: feature rows, (t0, t1, metres), the cumulative
    distance at each window's start and each window's place in the full sequence."""

    rows: np.ndarray
    spans: list[tuple[float, float, float]]
    d0: np.ndarray
    seq: np.ndarray


def _empty() -> _Windows:
    return _Windows(np.empty((0, len(FEATURES))), [], np.empty(0), np.empty(0, dtype=int))


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


def _windows(track: Track) -> _Windows:
    """Clean ``track`` as a ride, put it on a 1 s grid and compute each kept window's row."""
    clean = clean_track(replace(track, sport="ride"))
    t, lat, lon = clean.t, clean.lat, clean.lon
    if t.size < 8 or t[-1] - t[0] < WINDOW_S:
        return _empty()
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
        return _empty()
    dist = np.concatenate([[0.0], np.cumsum(np.where(broken, 0.0, steps))])

    grid, in_gap = _grid(t, broken)
    n = grid.size
    # Smooth over at least two fixes: a sparse logger's rounded timestamps make single steps
    # alternate between too fast and too slow.
    positive = dts[dts > 0]
    smooth = max(SMOOTH_S, int(round(2 * float(np.median(positive))))) if positive.size else SMOOTH_S
    gx = _box_mean(np.where(in_gap, np.nan, np.interp(grid, t, x)), smooth)
    gy = _box_mean(np.where(in_gap, np.nan, np.interp(grid, t, y)), smooth)
    dist_g = np.interp(grid, t, dist)

    vx, vy = _centred_diff(gx, DIFF_S), _centred_diff(gy, DIFF_S)
    v = np.hypot(vx, vy)
    v[in_gap] = np.nan
    vs = _box_mean(v, smooth)
    a = _centred_diff(vs, DIFF_S)
    jerk = _centred_diff(_box_mean(a, smooth), DIFF_S)
    ax, ay = _centred_diff(vx, DIFF_S), _centred_diff(vy, DIFF_S)
    with np.errstate(divide="ignore", invalid="ignore"):
        lateral = np.abs(vx * ay - vy * ax) / v

    ele_g = _elevation(t, clean.ele, grid, in_gap)
    vz = _centred_diff(ele_g, 5) if ele_g is not None else np.zeros(n)
    # Only a descent counts: it gives speed for free. A climb is not counted as effort, since
    # elevation noise would otherwise read as power no motor delivered.
    vz = np.minimum(np.nan_to_num(vz), 0.0)
    # The least specific power (W/kg) a tucked rider on a road bike would need: gravity counted
    # where elevation is known, so a descent's speed costs little.
    resist = G * CRR * vs + 0.5 * RHO * TUCK_CDA_M2 * vs ** 3 / SYSTEM_KG
    energy = vs * a + G * vz  # mechanical energy gained per kg and second
    power = energy + resist

    # Stops, with hysteresis: stopped below STOP_MPS until going again above GO_MPS.
    state = np.where(vs < STOP_MPS, 0.0, np.where(vs > GO_MPS, 1.0, np.nan))
    known = np.where(np.isfinite(state), np.arange(n), 0)
    filled = state[np.maximum.accumulate(known)]
    onset = np.zeros(n)
    onset[1:] = (filled[1:] == 0) & (filled[:-1] == 1)
    dv10 = _ahead(vs, LAUNCH_S) - vs
    launch = np.where(vs < LAUNCH_FROM_MPS, dv10, np.nan)

    hr_g = None
    hr = clean.hr
    hr_ok = np.isfinite(hr) & (hr > 40) & (hr < 230)
    if hr_ok.sum() >= max(30, HR_MIN_SHARE * hr.size):
        hr_g = np.interp(grid, t[hr_ok], hr[hr_ok])

    # Windows: every HOP_S, plus one ending at the last second.
    starts = list(range(0, n - WINDOW_S + 1, HOP_S))
    if starts and starts[-1] != n - WINDOW_S:
        starts.append(n - WINDOW_S)
    if not starts:
        return _empty()
    starts = np.asarray(starts)
    idx = starts[:, None] + np.arange(WINDOW_S)

    gap_w = in_gap[idx]
    v_w = vs[idx]
    valid = ~gap_w & np.isfinite(v_w)
    moving = valid & (v_w > MOVING_MPS)
    keep = (gap_w.mean(axis=1) <= MAX_GAP_SHARE) & (moving.mean(axis=1) >= MIN_MOVING_SHARE)
    if not keep.any():
        return _empty()
    idx, starts, valid, moving, v_w = idx[keep], starts[keep], valid[keep], moving[keep], v_w[keep]
    seq = np.flatnonzero(keep)
    at_speed = valid & (v_w > AT_SPEED_MPS)

    def take(series: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.where(mask, series[idx], np.nan)

    cols: dict[str, np.ndarray] = {}
    vm = np.where(moving, v_w, np.nan)
    cols["v_p50"] = _row_quantile(vm, 0.5)
    cols["v_p95"] = _row_quantile(vm, 0.95)
    with np.errstate(invalid="ignore", divide="ignore"):
        cols["v_cv"] = _row_stat(vm, np.nanstd) / _row_stat(vm, np.nanmean)
    acc = take(a, at_speed)
    cols["acc_up_p95"] = _row_quantile(acc, 0.95, MIN_AT_SPEED_S)
    cols["jerk_p90"] = _row_quantile(np.abs(take(jerk, at_speed)), 0.9, MIN_AT_SPEED_S)
    pw = take(power, valid)
    cols["power_mean"] = _row_stat(pw, np.nanmean, MIN_AT_SPEED_S)
    cols["power_p90"] = _row_quantile(pw, 0.9, MIN_AT_SPEED_S)
    cols["energy_gain_p95"] = _row_quantile(take(energy, valid), 0.95, MIN_AT_SPEED_S)
    stopped = valid & (v_w < STOP_MPS)
    cols["stop_share"] = stopped.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    cols["stops"] = onset[idx].sum(axis=1).astype(float)
    cols["launch_dv10"] = _row_stat(take(launch, valid), np.nanmax)
    cols["dv10_max"] = _row_stat(take(dv10, valid), np.nanmax)
    cols["lat_p95"] = _row_quantile(take(lateral, at_speed), 0.95, MIN_AT_SPEED_S)
    if hr_g is not None:
        hm = take(hr_g, moving)
        cols["hr_mean"] = _row_stat(hm, np.nanmean, 30)
        cols["m_per_beat"] = cols["v_p50"] * 60.0 / cols["hr_mean"]
    else:
        cols["hr_mean"] = cols["m_per_beat"] = np.full(starts.size, np.nan)

    rows = np.column_stack([cols[name] for name in FEATURES])
    d0 = dist_g[starts]
    d1 = dist_g[starts + WINDOW_S - 1]
    # Each window's first and last recorded second (a window may begin or end in a gap).
    real = ~in_gap[idx]
    first = idx[np.arange(idx.shape[0]), np.argmax(real, axis=1)]
    last = idx[np.arange(idx.shape[0]), WINDOW_S - 1 - np.argmax(real[:, ::-1], axis=1)]
    spans = [(float(a), float(b), float(m)) for a, b, m in zip(grid[first].tolist(), grid[last].tolist(),
                                                               (d1 - d0).tolist())]
    return _Windows(rows, spans, d0, seq)


def stretch_features(track: Track) -> tuple[np.ndarray, list[tuple[float, float, float]]]:
    """One row of ``FEATURES`` per kept window of the cleaned track, and each window's
    (t0, t1, metres). A track shorter than a window, or standing still, gives none."""
    w = _windows(track)
    return w.rows, w.spans


def thinned(track: Track, stride: int, offset: int = 0) -> Track:
    """The track with only every ``stride``-th point (from ``offset``): a sparser logger."""
    return track.take(np.arange(offset, len(track), stride))


def _median_dt(track: Track) -> float:
    t = track.t[np.isfinite(track.t)]
    steps = np.diff(np.sort(t))
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else 1.0


def _versions(track: Track) -> list[tuple[int, Track]]:
    """The track and its thinned copies no sparser than MAX_AUGMENT_DT_S, with their stride."""
    out = [(1, track)]
    dt = _median_dt(track)
    for stride in AUGMENT_STRIDES:
        if dt * stride <= MAX_AUGMENT_DT_S:
            out.append((stride, thinned(track, stride, stride // 2)))
    return out


# The model --------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Feature rows of labelled examples: label, group, thinning stride, which track version
    (one per example and stride) and the window's place in that version's sequence."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    stride: np.ndarray
    part: np.ndarray
    seq: np.ndarray


def training_rows(examples) -> _Rows:
    """The feature rows of ``(group, track, label)`` examples with their thinned copies, as
    ``VehicleModel.train`` makes them."""
    return _example_rows(examples)


def _example_rows(examples, augment: bool = True) -> _Rows:
    xs, ys, gs, ss, ps, qs = [], [], [], [], [], []
    for group, track, label in examples:
        for stride, version in (_versions(track) if augment else [(1, track)]):
            w = _windows(version)
            if not len(w.rows):
                continue
            n = len(w.rows)
            xs.append(w.rows)
            ys.append(np.full(n, int(label)))
            gs.append(np.full(n, str(group), dtype=object))
            ss.append(np.full(n, stride))
            ps.append(np.full(n, len(ps)))
            qs.append(w.seq)
    if not xs:
        empty = np.empty(0, dtype=int)
        return _Rows(np.empty((0, len(FEATURES))), empty, np.empty(0, dtype=object), empty, empty, empty)
    return _Rows(np.vstack(xs), np.concatenate(ys), np.concatenate(gs), np.concatenate(ss),
                 np.concatenate(ps), np.concatenate(qs))


def _run_scores(probs: np.ndarray, part: np.ndarray, seq: np.ndarray, min_windows: int = MIN_WINDOWS) -> np.ndarray:
    """Per window, the lowest probability over it and the next ``min_windows - 1`` windows
    of its sequence (0 where they are not consecutive): a recording has a stretch at
    threshold t exactly when one of its windows scores t or more."""
    out = probs.astype(float).copy()
    for k in range(1, min_windows):
        nxt = np.zeros(probs.size)
        if probs.size > k:
            same = (part[k:] == part[:-k]) & (seq[k:] - seq[:-k] == k)
            nxt[:-k] = np.where(same, probs[k:], 0.0)
        out = np.minimum(out, nxt)
    return out


def fold_of(group: str, folds: int, salt: str = "") -> int:
    """A group's fold from a CRC-32 of its name: the same on every run and machine."""
    return zlib.crc32(f"{salt}{group}".encode()) % folds


def _columns() -> list[int]:
    return [FEATURES.index(name) for name in MODEL_FEATURES]


def _fit(rows: _Rows, seed: int, kind: str = "gb"):
    """Fit the classifier on the model's columns, classes weighted to equal total weight."""
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    weight = compute_sample_weight("balanced", rows.y)
    x = rows.x[:, _columns()]
    if kind == "hgb":
        from threadpoolctl import threadpool_limits

        clf = HistGradientBoostingClassifier(**HGB_PARAMS, random_state=seed)
        with threadpool_limits(1, user_api="openmp"):
            clf.fit(x, rows.y, sample_weight=weight)
        return clf
    clf = GradientBoostingClassifier(**GB_PARAMS, random_state=seed)
    clf.fit(np.where(np.isfinite(x), x, MISSING), rows.y, sample_weight=weight)
    return clf


def _predict(clf, x: np.ndarray) -> np.ndarray:
    """Vehicle probabilities of rows of the model's columns."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if isinstance(clf, HistGradientBoostingClassifier):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="openmp"):
            return clf.predict_proba(x)[:, 1]
    return clf.predict_proba(np.where(np.isfinite(x), x, MISSING))[:, 1]


def _subset(rows: _Rows, mask: np.ndarray) -> _Rows:
    return _Rows(rows.x[mask], rows.y[mask], rows.groups[mask], rows.stride[mask], rows.part[mask],
                 rows.seq[mask])


def _peaks(scores: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Each group's highest score."""
    peak: dict[str, float] = {}
    for g, p in zip(groups.tolist(), scores.tolist()):
        if p > peak.get(g, -1.0):
            peak[g] = p
    return peak


def _threshold_from(probs: np.ndarray, rows: _Rows) -> float:
    """The lowest threshold at which at most MAX_HUMAN_SHARE of the human recordings have a
    stretch (MIN_WINDOWS consecutive windows) at or above it, within [MIN_THRESHOLD,
    MAX_THRESHOLD]."""
    human = rows.y == 0
    if not human.any():
        return MIN_THRESHOLD
    scores = _run_scores(probs, rows.part, rows.seq)
    peak = _peaks(scores[human], rows.groups[human])
    ordered = np.sort(np.array(list(peak.values())))[::-1]
    allowed = int(math.floor(MAX_HUMAN_SHARE * ordered.size))
    # Flag at most ``allowed`` recordings: sit just above the next one's highest window.
    level = float(np.nextafter(ordered[allowed], 1.0)) if allowed < ordered.size else MIN_THRESHOLD
    return float(min(max(level, MIN_THRESHOLD), MAX_THRESHOLD))


def _inner_threshold(rows: _Rows, seed: int, kind: str, folds: int = INNER_FOLDS) -> float:
    """The threshold from an inner grouped cross-validation of the training rows."""
    fold = np.array([fold_of(g, folds, "inner:") for g in rows.groups])
    probs = np.full(rows.y.size, np.nan)
    for k in range(folds):
        test = fold == k
        train = _subset(rows, ~test)
        if not test.any() or np.unique(train.y).size < 2:
            continue
        probs[test] = _predict(_fit(train, seed, kind), rows.x[test][:, _columns()])
    ok = np.isfinite(probs)
    return _threshold_from(probs[ok], _subset(rows, ok))


@dataclass
class VehicleModel:
    """A classifier of windows (vehicle against person) and its flagging threshold."""

    classifier: object
    threshold: float
    features: tuple[str, ...] = MODEL_FEATURES
    meta: dict = field(default_factory=dict)

    min_windows: int = MIN_WINDOWS

    @classmethod
    def train(cls, examples, seed: int = 0, classifier: str = "gb") -> VehicleModel:
        """Fit on ``(group, track, label)`` examples (label 1: a vehicle), with thinned
        copies; the threshold comes from an inner grouped cross-validation. ``classifier``:
        "gb" (gradient boosting, the default) or "hgb" (histogram gradient boosting)."""
        return cls._from_rows(_example_rows(examples), seed, classifier)

    @classmethod
    def _from_rows(cls, rows: _Rows, seed: int, kind: str = "gb") -> VehicleModel:
        import sklearn

        if kind not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {kind!r}: expected one of {', '.join(CLASSIFIERS)}")
        if np.unique(rows.y).size < 2:
            raise ValueError("training needs windows of both vehicles and people")
        threshold = _inner_threshold(rows, seed, kind)
        clf = _fit(rows, seed, kind)
        meta = {
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "scikit-learn": sklearn.__version__},
            "params": {"classifier": kind, **(GB_PARAMS if kind == "gb" else HGB_PARAMS), "random_state": seed,
                       "class_weight": "balanced", "window_s": WINDOW_S, "hop_s": HOP_S,
                       "min_windows": MIN_WINDOWS, "features": list(MODEL_FEATURES)},
            "training": {"windows": int(rows.y.size), "vehicle_windows": int((rows.y == 1).sum()),
                         "vehicle_groups": int(np.unique(rows.groups[rows.y == 1]).size),
                         "human_groups": int(np.unique(rows.groups[rows.y == 0]).size)},
            "threshold_rule": f"inner {INNER_FOLDS}-fold grouped CV: at most {MAX_HUMAN_SHARE:.0%} of "
                              f"human recordings flagged, within [{MIN_THRESHOLD}, {MAX_THRESHOLD}]",
        }
        return cls(clf, threshold, MODEL_FEATURES, meta)

    @classmethod
    def train_without(cls, rows: _Rows, groups: set, seed: int = 0, classifier: str = "gb") -> VehicleModel:
        """Fit on rows made once by ``training_rows``, leaving out every window of ``groups``
        (for cross-fitting: one set of rows, a model per fold)."""
        keep = np.array([g not in groups for g in rows.groups.tolist()], dtype=bool)
        return cls._from_rows(_subset(rows, keep), seed, classifier)

    def _predict(self, rows: np.ndarray) -> np.ndarray:
        if not len(rows):
            return np.empty(0)
        cols = [FEATURES.index(name) for name in self.features]
        return _predict(self.classifier, rows[:, cols])

    def probabilities(self, track: Track) -> np.ndarray:
        """The vehicle probability of each window of ``stretch_features(track)``."""
        return self._predict(_windows(track).rows)

    def stretches(self, track: Track, threshold: float | None = None) -> list[dict]:
        """Runs of at least ``min_windows`` consecutive windows at or above the threshold,
        merged: each with t0, t1, metres, mean and max probability and the number of windows."""
        threshold = self.threshold if threshold is None else threshold
        w = _windows(track)
        probs = self._predict(w.rows)
        return _merge(w, probs, threshold, self.min_windows)


def _merge(w: _Windows, probs: np.ndarray, threshold: float, min_windows: int = MIN_WINDOWS) -> list[dict]:
    out: list[dict] = []
    hit = np.flatnonzero(probs >= threshold)
    if not hit.size:
        return out
    # A new stretch wherever the next flagged window is not the next window in the sequence.
    breaks = np.flatnonzero(np.diff(w.seq[hit]) != 1) + 1
    for run in np.split(hit, breaks):
        if run.size < min_windows:
            continue
        first, last = int(run[0]), int(run[-1])
        p = probs[run]
        out.append({"t0": w.spans[first][0], "t1": w.spans[last][1],
                    "metres": float(w.d0[last] + w.spans[last][2] - w.d0[first]),
                    "mean_probability": float(p.mean()), "max_probability": float(p.max()),
                    "windows": int(run.size)})
    return out


# Data ---------------------------------------------------------------------------------------


def default_vehicles_dir(tracks_dir: Path | None) -> Path | None:
    """The ``vehicles`` folder beside the tracks folder when it exists, else the folder named
    by TRACKER_SHARED_VEHICLES when that exists; None otherwise."""
    if tracks_dir is not None:
        beside = Path(tracks_dir).parent / "vehicles"
        if beside.is_dir():
            return beside
    explicit = os.environ.get("TRACKER_SHARED_VEHICLES")
    if explicit and Path(explicit).is_dir():
        return Path(explicit)
    return None


def vehicle_examples(tracks_dir: Path | None, vehicles_dir: Path | None = None,
                     humans: list[tuple[str, Track]] | None = None) -> list[tuple[str, Track, int]]:
    """The drives in ``vehicles_dir`` (default: ``default_vehicles_dir``) as label 1, grouped
    by file name, and the clean runs and rides of ``real_recordings(tracks_dir)`` (or
    ``humans``, when the caller has read them already) as label 0, grouped by recording; the
    files in ``REAL_POSITIVES`` are left out (kept for evaluation)."""
    out: list[tuple[str, Track, int]] = []
    vehicles_dir = default_vehicles_dir(tracks_dir) if vehicles_dir is None else Path(vehicles_dir)
    if vehicles_dir is not None and vehicles_dir.is_dir():
        for path in sorted(vehicles_dir.iterdir()):
            if path.suffix.lower().lstrip(".") not in FORMATS or path.name in REAL_POSITIVES:
                continue
            try:
                out.append((path.name, load_track(path), 1))
            except TrackFileError:
                continue
    if humans is None and tracks_dir is not None:
        humans = real_recordings(Path(tracks_dir))
    out.extend((name, track, 0) for name, track in humans or ())
    return out


# Evaluation -------------------------------------------------------------------------------


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if np.unique(y).size == 2 else math.nan


def grouped_evaluation(examples, folds: int = 5, seed: int = 0, classifier: str = "gb") -> dict:
    """Grouped cross-validation by recording or drive (folds from a CRC-32 of the group, so a
    drive's windows are never on both sides); each fold's threshold comes from its training
    part only. Per window: ROC AUC, precision and recall at the threshold; per recording:
    share of drives with a flagged stretch, share of human recordings with one (false
    alarms) and their names; also the drives thinned to one fix every 5 s."""
    examples = list(examples)
    rows = _example_rows(examples)
    label_of = {str(g): int(label) for g, _, label in examples}
    fold = np.array([fold_of(g, folds) for g in rows.groups])
    probs = np.full(rows.y.size, np.nan)
    thresholds = np.full(rows.y.size, np.nan)
    fold_thresholds = []
    for k in range(folds):
        test = fold == k
        train = _subset(rows, ~test)
        if not test.any() or np.unique(train.y).size < 2:
            continue
        model = VehicleModel._from_rows(train, seed, classifier)
        fold_thresholds.append(model.threshold)
        probs[test] = model._predict(rows.x[test])
        thresholds[test] = model.threshold
    scored = np.isfinite(probs)
    native = scored & (rows.stride == 1)
    y, p, flagged = rows.y[native], probs[native], probs[native] >= thresholds[native]
    tp = int((flagged & (y == 1)).sum())
    window = {"windows": int(native.sum()), "vehicle_windows": int((y == 1).sum()), "auc": _auc(y, p),
              "precision": tp / max(int(flagged.sum()), 1), "recall": tp / max(int((y == 1).sum()), 1),
              "human_window_flag_rate": float((flagged & (y == 0)).sum() / max(int((y == 0).sum()), 1))}

    # A recording is flagged when it has a stretch: MIN_WINDOWS consecutive windows at or
    # above its fold's threshold. Its score: the best such run's lowest probability over
    # the threshold (>= 1: flagged).
    run_scores = np.where(scored, _run_scores(np.nan_to_num(probs), rows.part, rows.seq), 0.0)

    def recordings(mask: np.ndarray) -> dict[str, float]:
        return _peaks(run_scores[mask] / thresholds[mask], rows.groups[mask])

    native_peak = recordings(native)
    drives = sorted(g for g, label in label_of.items() if label == 1)
    humans = sorted(g for g, label in label_of.items() if label == 0)
    found = [g for g in drives if native_peak.get(g, 0.0) >= 1.0]
    false_alarms = [g for g in humans if native_peak.get(g, 0.0) >= 1.0]
    sparse_peak = recordings(scored & (rows.stride == 5) & (rows.y == 1))
    sparse_drives = sorted(g for g in drives if g in sparse_peak)
    sparse_found = [g for g in sparse_drives if sparse_peak[g] >= 1.0]
    return {
        "folds": folds, "seed": seed, "classifier": classifier, "min_windows": MIN_WINDOWS, "window": window,
        "thresholds": [round(t, 4) for t in fold_thresholds],
        "drives": len(drives), "drives_found": len(found),
        "drive_recall": len(found) / max(len(drives), 1),
        "drives_missed": [g for g in drives if g not in found],
        "humans": len(humans), "humans_flagged": len(false_alarms),
        "human_false_alarm_rate": len(false_alarms) / max(len(humans), 1),
        "false_alarms": false_alarms,
        "humans_without_windows": [g for g in humans if g not in native_peak],
        "drives_5s": len(sparse_drives), "drives_5s_found": len(sparse_found),
        "drive_peaks": {g: round(native_peak.get(g, 0.0), 3) for g in drives},
        "human_peaks": {g: round(native_peak.get(g, 0.0), 3) for g in humans},
    }


def _share_line(label: str, hits: int, n: int) -> str:
    """One row of the per-recording table: count, share and its 95% Wilson interval."""
    z = 1.959964
    if n:
        p = hits / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        interval = f"{max(0.0, centre - half):.0%}-{min(1.0, centre + half):.0%}"
    else:
        p, interval = 0.0, "-"
    return f"{label:<44}{hits:>6} / {n:<3}{p:>9.1%}{interval:>16}"


def report(result: dict) -> str:
    """The grouped evaluation as a plain-text table."""
    w = result["window"]
    lines = [
        f"Vehicle model ({result['classifier']}), grouped {result['folds']}-fold cross-validation by recording "
        f"(seed {result['seed']}); a stretch is {result['min_windows']}+ consecutive flagged windows",
        f"thresholds chosen in the training folds: {', '.join(f'{t:.3f}' for t in result['thresholds'])}",
        "",
        f"{'per window':<44}{'value':>12}",
        f"{'windows scored (vehicle)':<44}{w['windows']:>7} ({w['vehicle_windows']})",
        f"{'ROC AUC':<44}{w['auc']:>12.4f}",
        f"{'precision at the threshold':<44}{w['precision']:>12.4f}",
        f"{'recall at the threshold':<44}{w['recall']:>12.4f}",
        f"{'human windows flagged':<44}{w['human_window_flag_rate']:>12.4f}",
        "",
        f"{'per recording':<44}{'found':>12}{'share':>9}{'95% interval':>16}",
        _share_line("drives with a flagged stretch", result["drives_found"], result["drives"]),
        _share_line("drives thinned to 5 s, flagged", result["drives_5s_found"], result["drives_5s"]),
        _share_line("human recordings with a flagged stretch", result["humans_flagged"], result["humans"]),
    ]
    if result["drives"] >= 18:
        lines.append("(18 of the 20 real drives come from one car and logger: about three independent sources,\n"
                     " so the drive figures say less than their count suggests)")
    if result["drives_missed"]:
        lines.append("drives missed: " + ", ".join(result["drives_missed"]))
    if result["false_alarms"]:
        lines.append("human recordings flagged: " + ", ".join(result["false_alarms"]))
    if result["humans_without_windows"]:
        lines.append("human recordings without a window: " + ", ".join(result["humans_without_windows"]))
    return "\n".join(lines)
