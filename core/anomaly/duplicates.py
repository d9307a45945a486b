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
# A copy re-timed by more than this is the time-warp case, caught by the speed checks.
SLOPE_RANGE = (0.9, 1.1)
SEARCH_WINDOW = 0.08
INDEX_PENALTY_M = 0.5


def fingerprint(t: np.ndarray, lat: np.ndarray, lon: np.ndarray, dist: np.ndarray) -> dict | None:
    """The resampled route and timing of a track (per-second series), JSON-ready."""
    if dist.size < 2 or dist[-1] < 300:
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
        "centroid": [round(float(np.mean(la)), 5), round(float(np.mean(lo)), 5)],
        "lat": [round(float(v), 6) for v in np.interp(marks, d, la)],
        "lon": [round(float(v), 6) for v in np.interp(marks, d, lo)],
        "t": [round(float(v), 1) for v in rel],
    }


def compare(a: dict, b: dict) -> dict | None:
    """How ``a`` matches ``b``: None when the routes differ, else the shares and timing error."""
    if not a or not b:
        return None
    ratio = a["distance_m"] / max(b["distance_m"], 1.0)
    if not 0.8 <= ratio <= 1.25:
        return None
    lat = np.concatenate([a["lat"], b["lat"]])
    lon = np.concatenate([a["lon"], b["lon"]])
    x, y = local_xy(lat, lon)
    na = len(a["lat"])
    pa = np.column_stack([x[:na], y[:na]])
    pb = np.column_stack([x[na:], y[na:]])
    nb = len(pb)
    if na < 5 or nb < 5:
        return None
    near, tb = _nearest_on_route(pa, pb, np.asarray(b["t"], dtype=float))
    share = float(np.mean(near <= MATCH_RADIUS_M))
    if share < MATCH_SHARE:
        return {"share": share, "timing": math.inf, "same": False}
    matched = near <= MATCH_RADIUS_M
    ta = np.asarray(a["t"])[matched]
    tb = tb[matched]
    if ta.size < 5 or np.ptp(ta) <= 0:
        return {"share": share, "timing": math.inf, "same": False}
    slope = float(np.polyfit(ta, tb, 1)[0])
    # Copies keep the original's every slow-down and surge: the speed over each stretch of
    # a few hundred metres rises and falls with the original's, not just on average.
    k = max(1, min(int(round(STRETCH_M / max(a["distance_m"] / max(na - 1, 1), 1.0))), na // 12))
    ta_k, tb_k = ta[::k], tb[::k]
    dta, dtb = np.diff(ta_k), np.diff(tb_k)
    ok = (dta > 0.5) & (dtb > 0.5)
    if ok.sum() < 8:
        return {"share": share, "timing": math.inf, "same": False}
    la, lb = np.log(dta[ok]), np.log(dtb[ok])
    la, lb = la - la.mean(), lb - lb.mean()
    corr = float((la * lb).sum() / max(math.sqrt((la ** 2).sum() * (lb ** 2).sum()), 1e-12))
    timing = float(np.median(np.abs(la - lb)))
    same = (timing <= TIMING_CLOSE or (corr >= TIMING_CORR and timing <= TIMING_LOOSE)) \
        and SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]
    return {"share": share, "timing": timing, "corr": corr, "same": bool(same), "slope": slope}


def _nearest_on_route(pa: np.ndarray, pb: np.ndarray, tb_all: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each point of route ``pa`` (metres), the distance to the nearest spot on route ``pb``
    near where it should be, and ``pb``'s elapsed time there."""
    na, nb = len(pa), len(pb)
    window = max(3, int(SEARCH_WINDOW * nb))
    expected = np.linspace(0, nb - 2, na)
    near = np.empty(na)
    tb = np.empty(na)
    for i in range(na):
        lo = max(0, int(expected[i]) - window)
        hi = min(nb - 1, int(expected[i]) + window + 1)
        start, end = pb[lo:hi], pb[lo + 1:hi + 1]
        seg = end - start
        length2 = np.maximum((seg ** 2).sum(axis=1), 1e-9)
        u = np.clip(((pa[i] - start) * seg).sum(axis=1) / length2, 0.0, 1.0)
        d = np.hypot(*(start + seg * u[:, None] - pa[i]).T)
        # Where the route passes the same spot twice (laps, out and back), prefer the pass
        # nearest to where this point should be along the route.
        k = int(np.argmin(d + INDEX_PENALTY_M * np.abs(np.arange(lo, hi) - expected[i])))
        near[i] = d[k]
        tb[i] = tb_all[lo + k] + u[k] * (tb_all[lo + k + 1] - tb_all[lo + k])
    return near, tb


def find_copy(fp: dict | None, candidates) -> tuple[object, dict] | None:
    """The first candidate (key, fingerprint) that ``fp`` copies, with the comparison."""
    if not fp:
        return None
    for key, other in candidates:
        result = compare(fp, other)
        if result and result["same"]:
            return key, result
    return None


def nearby(fp: dict, other: dict, radius_deg: float = 0.03) -> bool:
    """Whether two fingerprints are close enough to be worth comparing."""
    (la, lo), (lb, lob) = fp["centroid"], other["centroid"]
    return abs(la - lb) <= radius_deg and abs(lo - lob) <= radius_deg * 2
