"""Generated runs and rides for the tests' small population model (production trains on real
recordings only; see ``core.anomaly.training``)."""

from __future__ import annotations

import random

from core.synthetic.tracks import TOWNS, synthetic_track
from core.tracks.track import Track


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
