"""Where the population model learns what ordinary activities look like.

Real activities only, from two sources used as far as they exist: the database's activities
that were scored and found fine (their stored features, read by ``registry``), and the real
recordings in ``../shared/data/tracks`` (each also cut into a few shorter windows, so the
model sees real GPS behaviour at many lengths). Generated tracks (``core.synthetic``) are
never used: changing the demo must not change the model. With neither source the model has
no forest, and activities are judged by the rules and the athlete's own history.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np

from core.activities.tables import SPORTS
from core.anomaly.features import track_features, vector
from core.tracks.formats import load_track
from core.tracks.formats.common import TrackFileError
from core.tracks.track import Track

# Recordings in the shared corpus that are not honest runs or rides, found by inspection.
REAL_POSITIVES = {
    "around-visnjan-with-car.gpx": "a car drive",
    "Forerunner305-Running-NoHeartrate-1Lap.tcx":
        "a run whose last 3 km go at 60-70 km/h along a road: the watch kept recording in a car",
}
MIN_DURATION_S = 300.0


def real_recordings(shared: Path | None) -> list[tuple[str, Track]]:
    """Outdoor runs and rides with GPS from the shared corpus (one copy of each recording)."""
    if shared is None or not Path(shared).is_dir():
        return []
    out: list[tuple[str, Track]] = []
    seen = set()
    for path in sorted(Path(shared).glob("*/*")):
        if path.suffix.lower() not in (".gpx", ".tcx", ".fit") or path.name in REAL_POSITIVES:
            continue
        try:
            track = load_track(path)
        except TrackFileError:
            continue
        if track.sport not in SPORTS or track.indoor or track.meta.get("multisport"):
            continue
        if track.gps_points < 100:
            continue
        t = track.t[np.isfinite(track.t)]
        if t.size == 0 or np.ptp(t) < MIN_DURATION_S:
            continue
        # The same recording exported twice (FIT and TCX of one race) counts once.
        key = (round(float(t.min())), track.gps_points)
        if key in seen:
            continue
        seen.add(key)
        out.append((f"{path.parent.name}/{path.name}", track))
    return out


def windows(track: Track, rng: random.Random, count: int) -> list[Track]:
    """Shorter stretches (40-90% of the recording) of a track."""
    n = len(track)
    out = []
    for _ in range(count):
        length = int(n * rng.uniform(0.4, 0.9))
        start = rng.randrange(0, max(1, n - length))
        out.append(track.take(np.arange(start, start + length)))
    return out


def feature_rows(tracks) -> dict[str, list[np.ndarray]]:
    """Feature rows per sport of (track, sport) pairs."""
    rows: dict[str, list[np.ndarray]] = {sport: [] for sport in SPORTS}
    for track, sport in tracks:
        features = track_features(track, sport)
        if features.usable and math.isfinite(features.values.get("log_avg_speed", math.nan)):
            rows[sport].append(vector(features))
    return rows


def population(real: list[tuple[str, Track]], window_count: int = 4, seed: int = 5) -> list[tuple[Track, str]]:
    """The real recordings and windows of them, each with its sport."""
    rng = random.Random(seed)
    out = []
    for _, track in real:
        out.append((track, track.sport))
        out.extend((w, track.sport) for w in windows(track, rng, window_count))
    return out
