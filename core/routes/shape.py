"""The way an activity went, as a route sees it: no I/O, only numbers.

A shape is the cleaned GPS path resampled every ``STEP_M`` metres along the way, with
everything within ``TRIM_M`` (a straight line) of where the activity started or ended cut
out, so that nobody's door is ever part of a route. Two shapes follow the same way when
each lies along the other:

- a sample of one *lies along* the other when a sample of the other is within
  ``MATCH_TOLERANCE_M`` (GPS noise of both recordings, and the half-step of resampling);
- the shapes match when at least ``MIN_COVERAGE`` of each one's samples lie along the
  other, leaving out of each share the samples near where the other activity began or
  ended (the other shape was trimmed there). Direction does not matter (the nearest-sample test ignores it), and neither does
  where on a loop each athlete joined it. Partial overlap is a match only when both sides
  keep to the rule: a 5 km loop inside a 20 km ride is not the same route as the ride
  (a quarter of the ride lies along the loop), and a run that adds a 10% detour still
  is one.

Candidates are found by grid cells of ``CELL_DEG`` degrees that a shape passes through
(``cells``), so matching reads only the routes that share most of its cells.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from core.tracks.cleaning import clean_track
from core.tracks.geo import WGS84_A_M, segment_lengths_m
from core.tracks.track import Track

STEP_M = 25.0
TRIM_M = 400.0  # nothing of a route lies this close to where any of its activities began or ended
MATCH_TOLERANCE_M = 60.0
MIN_COVERAGE = 0.8
MIN_PATH_M = 1000.0  # a shape shorter than this once trimmed is no route
CELL_DEG = 0.01  # about 1.1 km of latitude
MIN_SHARED_CELLS = 0.5  # share of the larger cell set two shapes must have in common to be compared
LOOP_CLOSE_M = 300.0  # ends this close: the activity came back to where it began
OUT_AND_BACK_SHARE = 0.7  # share of the way back that retraces the way out
TURN_CHORD_M = 50.0
TURN_DEG = 45.0
STOP_SPEED_MPS = 0.5
STOP_MIN_S = 10.0
POLYLINE_MAX_POINTS = 200
KINDS = ("loop", "out_and_back", "one_way")


@dataclass
class Shape:
    """A trimmed, resampled path and what the full path says about the way."""

    lat: np.ndarray
    lon: np.ndarray
    start: tuple[float, float]  # the activity's first and last fix (never shown; for trimming)
    end: tuple[float, float]
    kind: str
    path_m: float  # the whole path before trimming
    turns_per_km: float
    stops_per_km: float | None

    def __len__(self) -> int:
        return int(self.lat.size)

    def to_bytes(self) -> bytes:
        return np.column_stack([self.lat, self.lon]).astype(np.float32).tobytes()


def samples_from_bytes(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The (lat, lon) samples ``Shape.to_bytes`` stored."""
    pairs = np.frombuffer(raw, dtype=np.float32).reshape(-1, 2).astype(np.float64)
    return pairs[:, 0], pairs[:, 1]


def _xy(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float) -> np.ndarray:
    """Metres east and north of (lat0, lon0) on a local plane (enough within a route's reach)."""
    k = np.pi / 180.0 * WGS84_A_M
    return np.column_stack([(lon - lon0) * k * np.cos(np.radians(lat0)), (lat - lat0) * k])


def resample(lat: np.ndarray, lon: np.ndarray, step: float = STEP_M) -> tuple[np.ndarray, np.ndarray, float]:
    """Points every ``step`` metres along the path, and the path's length."""
    along = np.concatenate([[0.0], np.cumsum(segment_lengths_m(lat, lon))])
    total = float(along[-1])
    at = np.arange(0.0, total + 1e-9, step)
    return np.interp(at, along, lat), np.interp(at, along, lon), total


def _turns(xy: np.ndarray) -> int:
    """Changes of heading beyond ``TURN_DEG`` between consecutive chords of ``TURN_CHORD_M``."""
    every = max(int(round(TURN_CHORD_M / STEP_M)), 1)
    pts = xy[::every]
    if len(pts) < 3:
        return 0
    heading = np.arctan2(np.diff(pts[:, 1]), np.diff(pts[:, 0]))
    change = np.abs((np.diff(heading) + np.pi) % (2 * np.pi) - np.pi)
    return int(np.count_nonzero(change > np.radians(TURN_DEG)))


def _stops(t: np.ndarray, xy: np.ndarray) -> int:
    """Standstills of ``STOP_MIN_S`` or more (lights, junctions, gates) on the way."""
    if t.size < 3:
        return 0
    step = np.hypot(*np.diff(xy, axis=0).T)
    dt = np.diff(t)
    slow = (step < STOP_SPEED_MPS * np.maximum(dt, 1e-9)) & (dt < 60)
    count, held = 0, 0.0
    for is_slow, d in zip(slow, dt):
        if is_slow:
            held += d
            continue
        count += held >= STOP_MIN_S
        held = 0.0
    return count + (held >= STOP_MIN_S)


def _kind(xy: np.ndarray, closed: bool) -> str:
    if not closed:
        return "one_way"
    half = len(xy) // 2
    if half < 4:
        return "loop"
    out, back = xy[:half], xy[half:]
    near = cKDTree(out).query(back, distance_upper_bound=MATCH_TOLERANCE_M)[0]
    return "out_and_back" if np.mean(np.isfinite(near)) >= OUT_AND_BACK_SHARE else "loop"


def trim(lat: np.ndarray, lon: np.ndarray, ends: list[tuple[float, float]],
         radius: float = TRIM_M) -> np.ndarray:
    """A mask of the samples farther than ``radius`` from every point in ``ends``."""
    keep = np.ones(lat.size, dtype=bool)
    if lat.size == 0:
        return keep
    for e_lat, e_lon in ends:
        xy = _xy(lat, lon, e_lat, e_lon)
        keep &= np.hypot(xy[:, 0], xy[:, 1]) > radius
    return keep


def shape_of(track: Track, now: float | None = None) -> Shape | None:
    """The activity's shape, or None when it has no route (indoors, too short once trimmed)."""
    if track.indoor or len(track) < 2:
        return None
    clean = clean_track(track, now=now)
    if clean.lat.size < 2:
        return None
    lat, lon, path_m = resample(clean.lat, clean.lon)
    if lat.size < 2:
        return None
    start, end = (float(clean.lat[0]), float(clean.lon[0])), (float(clean.lat[-1]), float(clean.lon[-1]))
    xy = _xy(lat, lon, start[0], start[1])
    closed = bool(np.hypot(*xy[-1]) <= LOOP_CLOSE_M)
    kind = _kind(xy, closed)
    turns = _turns(xy) / max(path_m / 1000.0, 1e-9)
    stops = None
    if clean.t.size >= 3 and np.all(np.isfinite(clean.t)):
        stops = _stops(clean.t, _xy(clean.lat, clean.lon, start[0], start[1])) / max(path_m / 1000.0, 1e-9)
    keep = trim(lat, lon, [start, end])
    kept_lat, kept_lon = lat[keep], lon[keep]
    if kept_lat.size * STEP_M < MIN_PATH_M:
        return None
    return Shape(kept_lat, kept_lon, start, end, kind, path_m, float(turns), stops)


def coverage(lat_a: np.ndarray, lon_a: np.ndarray, lat_b: np.ndarray, lon_b: np.ndarray,
             b_ends: list[tuple[float, float]] = (), tolerance: float = MATCH_TOLERANCE_M) -> tuple[float, np.ndarray]:
    """The share of a's samples that lie along b, and for each of a's samples the index of
    its nearest sample of b (-1 where none is near). Samples of a that fall where b was
    trimmed (near ``b_ends``, b's own start and end) are left out of the share: b cannot
    have them. With fewer than ``MIN_PATH_M`` of a left to judge, the share is 0."""
    if lat_a.size == 0 or lat_b.size == 0:
        return 0.0, np.full(lat_a.size, -1)
    lat0, lon0 = float(lat_b[0]), float(lon_b[0])
    dist, idx = cKDTree(_xy(lat_b, lon_b, lat0, lon0)).query(
        _xy(lat_a, lon_a, lat0, lon0), distance_upper_bound=tolerance)
    near = np.isfinite(dist)
    judged = trim(lat_a, lon_a, list(b_ends), TRIM_M + tolerance) | near
    if judged.sum() * STEP_M < MIN_PATH_M:
        return 0.0, np.where(near, idx, -1)
    return float(near.sum() / judged.sum()), np.where(near, idx, -1)


@dataclass
class Match:
    coverage: float  # the smaller of the two shares
    direction: int  # 1: the way the route goes; -1: the other way round


def match(a: Shape, b_lat: np.ndarray, b_lon: np.ndarray, b_ends: list[tuple[float, float]],
          b_closed: bool = False) -> Match | None:
    """Whether shape a follows the route shape b (whose activity began and ended at
    ``b_ends``), by the module's rules, and which way."""
    share_ab, idx = coverage(a.lat, a.lon, b_lat, b_lon, b_ends)
    if share_ab < MIN_COVERAGE:
        return None
    share_ba, _ = coverage(b_lat, b_lon, a.lat, a.lon, [a.start, a.end])
    if share_ba < MIN_COVERAGE:
        return None
    found = idx[idx >= 0].astype(float)
    steps = np.diff(found)
    if b_closed:  # a loop joined anywhere: a step across the route's seam is a small one
        n = float(b_lat.size)
        steps = (steps + n / 2) % n - n / 2
    steps = steps[np.abs(steps) <= 8]  # jumps between branches of the route say nothing
    direction = 1 if steps.sum() >= 0 else -1
    return Match(min(share_ab, share_ba), direction)


def cells(lat: np.ndarray, lon: np.ndarray) -> set[int]:
    """The grid cells the samples fall in, as integer keys."""
    ilat = np.floor(lat / CELL_DEG).astype(np.int64) + 9000
    ilon = np.floor(lon / CELL_DEG).astype(np.int64) + 18000
    return {int(k) for k in np.unique(ilat * 40000 + ilon)}


def simplify(lat: np.ndarray, lon: np.ndarray, max_points: int = POLYLINE_MAX_POINTS) -> list[list[float]]:
    """At most ``max_points`` [lat, lon] pairs along the samples, both ends kept, rounded to
    about a metre."""
    if lat.size == 0:
        return []
    pick = np.unique(np.linspace(0, lat.size - 1, min(lat.size, max_points)).round().astype(int))
    return [[round(float(lat[i]), 5), round(float(lon[i]), 5)] for i in pick]


def longest_piece(lat: np.ndarray, lon: np.ndarray, keep: np.ndarray) -> slice:
    """The longest stretch of kept samples with no gap between neighbours (a stored shape
    has its trimmed stretches cut out: joining across a cut would draw a line over it)."""
    if lat.size == 0:
        return slice(0, 0)
    joined = np.ones(lat.size, dtype=bool)
    joined[1:] = segment_lengths_m(lat, lon) <= 2.5 * STEP_M
    mask = keep.copy()
    best, start, best_span = slice(0, 0), None, 0
    for i in range(lat.size + 1):
        ok = i < lat.size and mask[i] and (start is None or joined[i])
        if ok and start is None:
            start = i
            continue
        if not ok and start is not None:
            if i - start > best_span:
                best, best_span = slice(start, i), i - start
            start = i if i < lat.size and mask[i] else None
    return best


def longest_run(mask: np.ndarray) -> slice:
    """The longest stretch of True in ``mask`` (an empty slice when there is none)."""
    best, start, best_span = slice(0, 0), None, 0
    for i, v in enumerate(list(mask) + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if i - start > best_span:
                best, best_span = slice(start, i), i - start
            start = None
    return best
