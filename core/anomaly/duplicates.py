"""Spotting a copy of another athlete's activity.

A copied file keeps two things a thief cannot cheaply fake: the route, point for point,
and its timing, the moments the original athlete slowed, stopped and sprinted. Two honest
outings on the same course share the route but never the timing. So a fingerprint holds
the track resampled every few tens of metres with the elapsed time at each point, and a
match needs both: nearly every point within a few metres of the other route, and elapsed
times that agree after allowing for a uniform speed-up and a shifted start.
"""

from __future__ import annotations

import math

import numpy as np

from core.tracks.geo import local_xy

FINGERPRINT_POINTS = 300
MIN_SPACING_M = 25.0
MATCH_RADIUS_M = 30.0
MATCH_SHARE = 0.8
# Stretch by stretch (STRETCH_M each), a copy's pace follows the original's this closely
# (correlation of the log times); honest outings on one course follow each other far less.
# A steady effort varies too little for a correlation to mean much, so stretch times that
# agree within TIMING_CLOSE (median absolute log difference) also make a copy. Honest
# outings on one course differ by 4% or more.
STRETCH_M = 200.0
TIMING_CORR = 0.9
TIMING_CLOSE = 0.03
TIMING_LOOSE = 0.06
# Within SLOPE_RANGE of the original's timing a copy may match by either test above; a copy
# re-timed further (sped up or slowed down as a whole, up to RETIMED_RANGE) must keep the
# original's rise and fall of pace stretch by stretch.
SLOPE_RANGE = (0.9, 1.1)
RETIMED_RANGE = (0.5, 2.0)
# A copy may be a part of the original (its ends cropped), down to half its distance, and
# measure longer than it (jitter added to its fixes adds path), up to four times.
DISTANCE_RATIO = (0.5, 4.0)
# Skipping ahead along the other route costs this per segment skipped (laps stay apart).
INDEX_PENALTY_M = 0.5
# A course of laps passes a copy's first point once a lap: each pass with at least PASS_ROOM
# of the copy's length of route after it is a candidate start, the nearest MAX_PASSES.
MAX_PASSES = 12
PASS_ROOM = 0.4
# Close stretch times must also rise and fall together a little (an evenly paced stranger on
# the same loop has close times too, by chance).
CLOSE_CORR = 0.5
# Two recordings of the same places at the same moments (within TOGETHER_S at nearly every
# place, at the same pace, each on fixes of its own) are athletes out together, never a copy.
TOGETHER_S = 600.0
TOGETHER_SHARE = 0.9
TOGETHER_SLOPE = (0.97, 1.03)
TOGETHER_OFFSET_M = 1.0
# A stored fingerprint holds about FINGERPRINT_POINTS points; one with more is refused.
MAX_POINTS = 4 * FINGERPRINT_POINTS
# A copy's times follow the original's up to GPS noise; two honest outings drift apart over
# kilometres (one fades, one stops at a light), even when terrain gives them the same rise and
# fall of pace: the smoothed residual of one's times against the other's, root mean square,
# as a share of the duration is at most DRIFT_MAX for a copy. Honest outings on one course
# drift 0.2% to 0.8% in our recordings (those under DRIFT_MAX fail the timing tests); copies
# mostly under 0.1%.
DRIFT_MAX = 0.0025
DRIFT_POINTS = 9
DRIFT_OUTLIER = 6.0
# Median absolute difference of stretch times that position noise alone gives, per metre of
# the routes' median distance apart (two stretch ends each off by about that much).
NOISE_SHARE = 1.0


def fingerprint(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, dist: np.ndarray) -> dict | None:
    """The resampled route and timing of a track (per-second series), JSON-ready."""
    if dist.size < 2 or not np.isfinite(dist[-1]) or dist[-1] < 300:
        return None
    total = float(dist[-1])
    spacing = max(MIN_SPACING_M, total / FINGERPRINT_POINTS)
    marks = np.arange(0.0, total, spacing)
    # np.interp needs increasing x: plateaus (standing still) keep their first sample.
    keep = np.concatenate([[True], np.diff(dist) > 0])
    d, tt, la, lo = dist[keep], t[keep], lat[keep], lon[keep]
    rel = np.interp(marks, d, tt) - tt[0]
    return {
        "distance_m": round(total, 1),
        "duration_s": round(float(tt[-1] - tt[0]), 1),
        "start": round(float(tt[0]), 1),
        "centroid": [round(float(np.mean(la)), 5), round(float(np.mean(lo)), 5)],
        "lat": [round(float(v), 6) for v in np.interp(marks, d, la)],
        "lon": [round(float(v), 6) for v in np.interp(marks, d, lo)],
        "t": [round(float(v), 1) for v in rel],
    }


def compare(a: dict, b: dict) -> dict | None:
    """How ``a`` matches ``b``: None when the routes differ (or either fingerprint is not
    whole), else the shares and timing error. ``a`` may be a part of ``b`` (a copy with its
    ends cropped) and timed faster or slower. Where ``b`` passes ``a``'s start more than once
    (laps), each pass is tried."""
    a, b = usable(a), usable(b)
    if a is None or b is None:
        return None
    ratio = a["distance_m"] / max(b["distance_m"], 1.0)
    if not DISTANCE_RATIO[0] <= ratio <= DISTANCE_RATIO[1]:
        return None
    lat = np.concatenate([a["lat"], b["lat"]])
    lon = np.concatenate([a["lon"], b["lon"]])
    x, y = local_xy(lat, lon)
    na = len(a["lat"])
    pa = np.column_stack([x[:na], y[:na]])
    pb = np.column_stack([x[na:], y[na:]])
    if na < 5 or len(pb) < 5:
        return None
    b_spacing = b["distance_m"] / max(len(pb) - 1, 1)
    best = None
    ta_all = np.asarray(a["t"], dtype=float)
    for near, tb, metres in _alignments(pa, pb, np.asarray(b["t"], dtype=float), b_spacing, a["distance_m"]):
        result = _judge(ta_all, near, tb, metres)
        if result["same"] and _together(a, b, ta_all, tb, near, result):
            # The same places at the same moments: two athletes out together (a group ride,
            # a friend who joined for part of it), not one recording uploaded twice.
            result = {**result, "same": False, "together": True}
        if result["same"]:
            return result
        if best is None or (result["share"], -result["timing"]) > (best["share"], -best["timing"]):
            best = result
    return best


def usable(fp) -> dict | None:
    """A stored fingerprint as numbers, or None when it is not whole: its lists of one length
    (at most MAX_POINTS), every number finite, a centroid of two. What ``compare`` and
    ``nearby`` read, whatever a stored row holds."""
    if not isinstance(fp, dict):
        return None
    try:
        lat, lon, t = (np.asarray(fp[k], dtype=float) for k in ("lat", "lon", "t"))
        distance = float(fp["distance_m"])
        centroid = np.asarray(fp["centroid"], dtype=float)
        start = fp.get("start")
        start = float(start) if isinstance(start, (int, float)) and not isinstance(start, bool) else math.nan
    except (KeyError, TypeError, ValueError, OverflowError):
        return None
    whole = (lat.ndim == 1 and lat.size == lon.size == t.size and 0 < lat.size <= MAX_POINTS
             and centroid.shape == (2,) and math.isfinite(distance)
             and bool(np.isfinite(lat).all() and np.isfinite(lon).all() and np.isfinite(t).all()
                      and np.isfinite(centroid).all()))
    if not whole:
        return None
    return {"lat": lat, "lon": lon, "t": t, "distance_m": distance, "centroid": centroid, "start": start}


def _together(a: dict, b: dict, ta: np.ndarray, tb: np.ndarray, near: np.ndarray, result: dict) -> bool:
    """Whether ``a`` passed the matched places within TOGETHER_S of when ``b`` did, nearly
    all of them (TOGETHER_SHARE), at the same pace (TOGETHER_SLOPE) and on its own fixes (at
    least TOGETHER_OFFSET_M off ``b``'s on the median: two devices never agree closer; an
    exact re-upload does). Fingerprints from before starts were kept are never "together"."""
    start_a, start_b = a["start"], b["start"]
    matched = near <= MATCH_RADIUS_M
    if not matched.any() or not (math.isfinite(start_a) and math.isfinite(start_b)):
        return False
    if not (TOGETHER_SLOPE[0] <= result.get("slope", 0.0) <= TOGETHER_SLOPE[1]):
        return False
    if result.get("offset", 0.0) < TOGETHER_OFFSET_M:
        return False
    apart = np.abs((start_a + ta[matched]) - (start_b + tb[matched]))
    return bool(np.quantile(apart, TOGETHER_SHARE) <= TOGETHER_S)


def _judge(ta: np.ndarray, near: np.ndarray, tb: np.ndarray, metres: float) -> dict:
    """Whether ``a``'s times ``ta`` and the other's times ``tb`` at the aligned spots (``near``
    metres off, ``metres`` of the other route covered) are those of a copy."""
    share = float(np.mean(near <= MATCH_RADIUS_M))
    if share < MATCH_SHARE:
        return {"share": share, "timing": math.inf, "same": False}
    matched = near <= MATCH_RADIUS_M
    ta, tb = ta[matched], tb[matched]
    if ta.size < 5 or np.ptp(ta) <= 0:
        return {"share": share, "timing": math.inf, "same": False}
    slope = float(np.polyfit(ta, tb, 1)[0])
    # Copies keep the original's every slow-down and surge: the speed over each stretch of
    # a few hundred metres rises and falls with the original's, not just on average. The
    # stretches are measured on the other route (jitter makes a copy's own distance longer).
    k = max(1, min(int(round(STRETCH_M / max(metres / max(ta.size - 1, 1), 1.0))), ta.size // 12))
    ta_k, tb_k = ta[::k], tb[::k]
    dta, dtb = np.diff(ta_k), np.diff(tb_k)
    ok = (dta > 0.5) & (dtb > 0.5)
    if ok.sum() < 8:
        return {"share": share, "timing": math.inf, "same": False}
    la, lb = np.log(dta[ok]), np.log(dtb[ok])
    la, lb = la - la.mean(), lb - lb.mean()
    corr = float((la * lb).sum() / max(math.sqrt((la ** 2).sum() * (lb ** 2).sum()), 1e-12))
    timing = float(np.median(np.abs(la - lb)))
    # Position noise (a copy's jitter, both fixes' error) makes stretch times disagree by
    # about this much on its own: it widens both timing tests, never the drift test.
    offset = float(np.median(near[matched]))
    noise = NOISE_SHARE * offset / STRETCH_M
    drift = _drift(ta, tb)
    close = (timing <= TIMING_CLOSE + noise and corr >= CLOSE_CORR
             and SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1])
    shaped = corr >= TIMING_CORR and timing <= TIMING_LOOSE + noise
    same = (close or shaped) and drift <= DRIFT_MAX and RETIMED_RANGE[0] <= slope <= RETIMED_RANGE[1]
    return {"share": share, "timing": timing, "corr": corr, "same": bool(same), "slope": slope,
            "offset": offset, "drift": drift}


def _drift(ta: np.ndarray, tb: np.ndarray) -> float:
    """How far the other route's times wander from a straight line in this one's, as a share
    of its duration: the residual of a linear fit, smoothed over DRIFT_POINTS points (GPS
    noise averages out, pacing that differs for kilometres does not), root mean square. Points
    off the line by more than DRIFT_OUTLIER times the median (placed on the wrong pass of a
    lap, or across a stop) are left out first."""
    residual = tb - np.polyval(np.polyfit(ta, tb, 1), ta)
    spread = np.abs(residual - np.median(residual))
    kept = spread <= DRIFT_OUTLIER * max(float(np.median(spread)), 1.0)
    if kept.sum() >= max(DRIFT_POINTS, residual.size // 2):
        residual = tb[kept] - np.polyval(np.polyfit(ta[kept], tb[kept], 1), ta[kept])
    if residual.size >= DRIFT_POINTS:
        residual = np.convolve(residual, np.ones(DRIFT_POINTS) / DRIFT_POINTS, mode="valid")
    return float(np.sqrt(np.mean(residual ** 2)) / max(float(np.ptp(tb)), 1.0))


def _alignments(pa: np.ndarray, pb: np.ndarray, tb_all: np.ndarray, b_spacing: float, a_metres: float):
    """For each point of route ``pa`` (metres), the distance to its spot on route ``pb``,
    ``pb``'s elapsed time there, and the metres of ``pb`` between the first and last spot: one
    alignment per pass of ``pb`` by ``pa``'s first point (at most MAX_PASSES, nearest first),
    then one free to start anywhere (a copy whose first fixes were moved off the route).

    The spots follow ``pb`` in order (a monotone alignment: laps and out-and-back courses
    keep each pass apart), start at that pass and end anywhere after it (a cropped copy), and
    skipping ahead costs INDEX_PENALTY_M per segment skipped."""
    start, seg = pb[:-1], pb[1:] - pb[:-1]
    length2 = np.maximum((seg ** 2).sum(axis=1), 1e-9)
    rel = pa[:, None, :] - start[None, :, :]
    u = np.clip((rel * seg[None]).sum(axis=2) / length2[None], 0.0, 1.0)
    d = np.hypot(*(start[None] + seg[None] * u[..., None] - pa[:, None, :]).transpose(2, 0, 1))
    na, ns = d.shape
    if np.mean(d.min(axis=1) <= MATCH_RADIUS_M) < MATCH_SHARE:  # no alignment can match
        yield d.min(axis=1), np.zeros(na), 0.0
        return
    # A point far off the route costs the same wherever it is aligned.
    cost = np.minimum(d, 2 * MATCH_RADIUS_M)
    j = np.arange(ns)
    penalty = INDEX_PENALTY_M * j
    rows = np.arange(na)
    # A pass with less of the route after it than half the copy cannot hold it.
    room = int(np.ceil(PASS_ROOM * a_metres / max(b_spacing, 1e-9)))
    for first in [*_passes(d[0], ns - room), None]:
        total = cost[0].copy() if first is None else np.where(j == first, cost[0], np.inf)
        back = np.zeros((na, ns), dtype=np.int64)
        for i in range(1, na):
            prev = total - penalty
            low = np.minimum.accumulate(prev)
            back[i] = np.maximum.accumulate(np.where(prev <= low, j, 0))
            total = cost[i] + penalty + low
        path = np.empty(na, dtype=np.int64)
        path[-1] = int(np.argmin(total))
        for i in range(na - 1, 0, -1):
            path[i - 1] = back[i, path[i]]
        uu = u[rows, path]
        tb = tb_all[path] + uu * (tb_all[path + 1] - tb_all[path])
        yield d[rows, path], tb, float(path[-1] + uu[-1] - path[0] - uu[0]) * b_spacing


def _passes(d0: np.ndarray, last: int) -> list[int]:
    """The segments up to ``last`` where the other route passes a point: the nearest segment
    of each run of segments within MATCH_RADIUS_M of it, nearest passes first (none when none
    is that close)."""
    close = np.flatnonzero(d0[:max(last, 1)] <= MATCH_RADIUS_M)
    if close.size == 0:
        return []
    runs = np.split(close, np.flatnonzero(np.diff(close) > 1) + 1)
    firsts = [int(r[np.argmin(d0[r])]) for r in runs]
    return sorted(firsts, key=lambda k: d0[k])[:MAX_PASSES]


def find_copy(fp: dict | None, candidates) -> tuple[object, dict] | None:
    """The first candidate (key, fingerprint) that ``fp`` copies, with the comparison."""
    if not fp:
        return None
    for key, other in candidates:
        result = compare(fp, other)
        if result and result["same"]:
            return key, result
    return None


def nearby(fp: dict, other, radius_deg: float = 0.03) -> bool:
    """Whether two fingerprints are close enough to be worth comparing (never one that is
    not whole)."""
    fp, other = usable(fp), usable(other)
    if fp is None or other is None:
        return False
    (la, lo), (lb, lob) = fp["centroid"], other["centroid"]
    return abs(la - lb) <= radius_deg and abs(lo - lob) <= radius_deg * 2
