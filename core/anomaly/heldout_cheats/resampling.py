"""What every held-out kind builds with: new fixes laid along the recorded route with
correlated noise, spliced into the recording, and stretches of it resampled to another
clock."""

from __future__ import annotations

import math

import numpy as np

from core.anomaly.heldout_cheats.source import PAUSE_S, Source
from core.tracks.track import COLUMNS, Track

M_PER_DEG_LAT = 111_320.0


def like(track: Track, cols: dict[str, np.ndarray], sport: str | None = None) -> Track:
    return Track(**cols, sport=sport or track.sport, name=track.name, device=track.device,
                 indoor=track.indoor, meta=dict(track.meta))


def interp_finite(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """``fp`` over increasing ``xp`` at ``x``, from its finite values only (NaN when none)."""
    ok = np.isfinite(fp) & np.isfinite(xp)
    if not ok.any():
        return np.full(np.shape(x), np.nan)
    xs, first = np.unique(xp[ok], return_index=True)
    return np.interp(x, xs, fp[ok][first])


def _along(src: Source, dist: np.ndarray) -> dict[str, np.ndarray]:
    """Position and elevation at route distances ``dist``, on the recorded fixes."""
    tr, fix = src.track, src.fix
    sf = src.s[fix]
    return {"lat": interp_finite(dist, sf, tr.lat[fix]), "lon": interp_finite(dist, sf, tr.lon[fix]),
            "ele": interp_finite(dist, sf, tr.ele[fix])}


def offset(lat: np.ndarray, lon: np.ndarray, east: np.ndarray, north: np.ndarray):
    lat2 = lat + north / M_PER_DEG_LAT
    lon2 = lon + east / (M_PER_DEG_LAT * np.cos(np.radians(lat)))
    return lat2, lon2


def ar_noise(gen: np.random.Generator, n: int, dt: float, tau: float) -> np.ndarray:
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


def smooth_wobble(gen: np.random.Generator, n: int) -> np.ndarray:
    """A smooth zero-ended curve over ``n`` samples with peak magnitude 1 (a few sine modes)."""
    if n < 2:
        return np.zeros(n)
    x = np.linspace(0.0, 1.0, n)
    curve = sum(gen.normal() / k * np.sin(np.pi * k * x) for k in range(1, 5))
    peak = float(np.max(np.abs(curve)))
    return curve / peak if peak > 0 else np.zeros(n)


def recorded(values: np.ndarray) -> bool:
    return bool(np.isfinite(values).mean() > 0.5)


def whole(values: np.ndarray) -> np.ndarray:
    return np.round(values)


def new_rows(src: Source, i0: int, rel: np.ndarray, dist: np.ndarray, jitter: np.ndarray) -> dict:
    """New fixes ``rel`` seconds after row ``i0`` at route distance ``dist`` past it, moved by
    ``jitter`` (east, north in metres); heart rate and cadence NaN, accuracy the device's."""
    tr = src.track
    pos = _along(src, src.s[i0] + dist)
    lat, lon = offset(pos["lat"], pos["lon"], jitter[:, 0], jitter[:, 1])
    acc = np.nanmedian(tr.acc) if np.isfinite(tr.acc).any() else np.nan
    return {"t": tr.t[i0] + rel, "lat": lat, "lon": lon, "ele": pos["ele"], "acc": np.full(rel.size, acc),
            "hr": np.full(rel.size, np.nan), "cad": np.full(rel.size, np.nan)}


def splice(track: Track, i0: int, mid: dict, j1: int, resume_t: float,
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
        cols["hr"][start:] = whole(rec + (hr_from - rec) * np.exp(-since / hr_tau))
    return like(track, cols)


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
            col = whole(col)
        out[name] = col
    return out


def retime(track: Track, lo: int, hi: int, factor: float, dt: float, new_lo_t: float
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
