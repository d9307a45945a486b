"""Ways to go for the route tests: a polyline in metres walked at a steady speed, with GPS
noise, from any point of it and either way round."""

from __future__ import annotations

import math

import numpy as np

from core.tracks.track import Track

M_PER_DEG = 111_320.0


def polygon(*corners: tuple[float, float]) -> np.ndarray:
    """Corners in metres (east, north), closed back to the first."""
    pts = np.array(corners + (corners[0],), dtype=float)
    return pts


def walk(vertices: np.ndarray, speed: float, dt: float, start_frac: float = 0.0, reverse: bool = False,
         laps: float = 1.0) -> np.ndarray:
    """Positions (metres) every ``dt`` seconds at ``speed`` along the polyline, starting
    ``start_frac`` of the way along, for ``laps`` of its length."""
    v = vertices[::-1] if reverse else vertices
    seg = np.hypot(*np.diff(v, axis=0).T)
    along = np.concatenate([[0.0], np.cumsum(seg)])
    total = along[-1]
    s = start_frac * total + np.arange(0.0, laps * total, speed * dt)
    closed = np.allclose(v[0], v[-1])
    s = s % total if closed else np.clip(s, 0, total)
    return np.column_stack([np.interp(s, along, v[:, 0]), np.interp(s, along, v[:, 1])])


def track(xy: np.ndarray, lat0: float, lon0: float, dt: float, sport: str = "run", noise_m: float = 4.0,
          seed: int = 1, t0: float = 1_760_000_000.0) -> Track:
    """A recorded track of the positions, ``noise_m`` of GPS scatter on each fix."""
    rng = np.random.default_rng(seed)
    xy = xy + rng.normal(0.0, noise_m, xy.shape)
    n = len(xy)
    lat = lat0 + xy[:, 1] / M_PER_DEG
    lon = lon0 + xy[:, 0] / (M_PER_DEG * math.cos(math.radians(lat0)))
    nan = np.full(n, np.nan)
    return Track(t0 + np.arange(n) * dt, lat, lon, np.full(n, 50.0), nan.copy(), nan.copy(), nan.copy(),
                 sport=sport)


def metres_from(lat: float, lon: float, lat0: float, lon0: float) -> float:
    return math.hypot((lat - lat0) * M_PER_DEG, (lon - lon0) * M_PER_DEG * math.cos(math.radians(lat0)))


# A 6 km loop through a park (a rectangle 2 km by 1 km).
LOOP = polygon((0, 0), (2000, 0), (2000, 1000), (0, 1000))
# A 20 km ride that takes in one long side of the loop and goes on far beyond it.
LONG_RIDE = np.array([(-3000.0, -2000.0), (0.0, 0.0), (2000.0, 0.0), (6000.0, 3000.0), (6000.0, 9000.0)])
