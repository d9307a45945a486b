"""Generated tracks: plausible runs and rides around real towns."""

from __future__ import annotations

import math
import random

import numpy as np

from core.activities.recording import GPS_INTERVAL_S
from core.tracks.track import Track

GPS_NOISE_M = 2.5
TYPICAL_SPEED_MPS = {"run": 3.0, "ride": 7.5}  # an easy run and ride, for demos and benches
TOWNS = [("Lisbon", 38.7223, -9.1393), ("Ljubljana", 46.0569, 14.5058),
         ("Portland", 45.5152, -122.6784), ("Bristol", 51.4545, -2.5879),
         ("Grenoble", 45.1885, 5.7245)]


def synthetic_track(rng: random.Random, sport: str, start: float, lat0: float, lon0: float,
                    minutes: float, speed_mps: float) -> Track:
    """A smooth wandering route at a steady effort, logged like a phone would."""
    step = GPS_INTERVAL_S["run"] if sport == "run" else GPS_INTERVAL_S["ride"]
    n = max(20, int(minutes * 60 / step))
    nprng = np.random.default_rng(rng.getrandbits(32))
    heading = np.cumsum(nprng.normal(0, 0.12, n)) + rng.uniform(0, 2 * math.pi)
    # Turn for home halfway so most routes come back towards where they started.
    heading[n // 2:] += math.pi * np.linspace(0, 1, n - n // 2) ** 2 * 0.9
    effort = speed_mps * (1 + 0.08 * np.sin(np.linspace(0, rng.uniform(3, 9), n))
                          + nprng.normal(0, 0.03, n))
    north = np.cumsum(effort * step * np.cos(heading))
    east = np.cumsum(effort * step * np.sin(heading))
    north += nprng.normal(0, GPS_NOISE_M, n)
    east += nprng.normal(0, GPS_NOISE_M, n)
    lat = lat0 + np.degrees(north / 6_367_000)
    lon = lon0 + np.degrees(east / (6_389_000 * math.cos(math.radians(lat0))))
    t = start + np.arange(n) * step
    ele = 80 + 25 * np.sin(north / 900.0) + 15 * np.cos(east / 1300.0)
    hr = np.clip(140 + 12 * (effort / speed_mps - 1) * 10 + nprng.normal(0, 3, n), 90, 200)
    nan = np.full(n, np.nan)
    return Track(t, lat, lon, ele, nan.copy(), hr, nan, sport=sport)


def generated(count: int, seed: int = 11) -> list[Track]:
    """Demo-style generated runs and rides at many paces."""
    rng = random.Random(seed)
    out = []
    for k in range(count):
        sport = "run" if k % 2 == 0 else "ride"
        speed = rng.uniform(2.2, 4.6) if sport == "run" else rng.uniform(4.5, 10.5)
        minutes = rng.uniform(20, 90) if sport == "run" else rng.uniform(30, 150)
        _, lat, lon = rng.choice(TOWNS)
        out.append(synthetic_track(rng, sport, 1.7e9 + k * 86400, lat, lon, minutes, speed))
    return out
