"""The recording a held-out cheat is made from: its rows with a trustworthy clock, its route
distance, the device's logging interval and GPS noise, and how fast it moves."""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from core.tracks.cleaning import clock_glitch
from core.tracks.geo import local_xy, segment_lengths_m
from core.tracks.track import COLUMNS, Track

MIN_FIXES = 60
MIN_DURATION_S = 240.0
KMH = 1 / 3.6
# A step longer than this (and than five device intervals) is a pause, never filled in.
PAUSE_S = 15.0


@dataclass
class Source:
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


def prepare(track: Track) -> Track | None:
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


def source_of(track: Track, rng: random.Random) -> Source:
    fix = np.flatnonzero(np.isfinite(track.lat) & np.isfinite(track.lon))
    along = np.concatenate([[0.0], np.cumsum(segment_lengths_m(track.lat[fix], track.lon[fix]))])
    s = np.interp(np.arange(len(track)), fix, along)
    steps = np.diff(track.t)
    return Source(track=track, dt=float(np.median(steps)), fix=fix, s=s,
                  sigma=_gps_sigma(track, fix), gen=np.random.default_rng(rng.getrandbits(63)))


def _gps_sigma(track: Track, fix: np.ndarray) -> float:
    """The fixes' scatter about a five-fix running mean (robust), in metres."""
    x, y = local_xy(track.lat[fix], track.lon[fix])
    kernel = np.full(5, 0.2)
    resid = np.concatenate([x[2:-2] - np.convolve(x, kernel, "valid"),
                            y[2:-2] - np.convolve(y, kernel, "valid")])
    mad = float(np.median(np.abs(resid - np.median(resid)))) * 1.4826
    return float(np.clip(mad, 0.3, 4.0))


def checked(track: Track | None) -> Track | None:
    """``track`` when its columns agree and its clock strictly increases, else None."""
    if track is None:
        return None
    n = len(track)
    if n < 2 or any(getattr(track, name).size != n for name in COLUMNS):
        return None
    if not (np.all(np.isfinite(track.t)) and np.all(np.diff(track.t) > 0)):
        return None
    return track


def moving_time(src: Source, lo: int, hi: int) -> float:
    """Seconds spent moving (over 0.8 m/s, no pause) between fix rows ``lo`` and ``hi``."""
    tr = src.track
    rows = src.fix[(src.fix >= lo) & (src.fix <= hi)]
    dist = segment_lengths_m(tr.lat[rows], tr.lon[rows])
    dt = np.diff(tr.t[rows])
    moving = (dt <= max(PAUSE_S, 5 * src.dt)) & (dist > 0.8 * dt)
    return float(dt[moving].sum())


def moving_speed(src: Source) -> float:
    """Median speed (m/s) over steps between consecutive fixes that move at all."""
    tr, fix = src.track, src.fix
    dist = segment_lengths_m(tr.lat[fix], tr.lon[fix])
    dt = np.diff(tr.t[fix])
    short = dt <= max(PAUSE_S, 5 * src.dt)
    speed = dist[short] / dt[short]
    moving = speed[speed > 0.5]
    return float(np.median(moving)) if moving.size else 0.0
