"""Where the population model learns what ordinary activities look like.

Real activities only, from two sources used as far as they exist: the database's activities
that were scored and found fine (their stored features, read by ``registry``), and the real
recordings in ``../shared/data/tracks`` (each also cut into a few shorter windows, so the
model sees real GPS behaviour at many lengths). Generated tracks (``core.synthetic``) are
never used: changing the demo must not change the model. With neither source the model has
no forest, and activities are judged by the rules and the athlete's own history.

The model's validation holds out whole recordings (with every window cut from them), never a
window whose recording the checking forest was trained on.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from pathlib import Path

import numpy as np

from core.activities.tables import SPORTS
from core.anomaly.features import track_features, vector
from core.anomaly.model import train_sport
from core.tracks.formats import outdoor_recordings
from core.tracks.track import Track

# Recordings in the shared corpus that are not honest runs or rides, found by inspection.
REAL_POSITIVES = {
    "around-visnjan-with-car.gpx": "a car drive",
    "Forerunner305-Running-NoHeartrate-1Lap.tcx":
        "a run whose last 3 km go at 60-70 km/h along a road: the watch kept recording in a car",
}
MIN_DURATION_S = 300.0


def real_recordings(shared: Path | None) -> list[tuple[str, Track]]:
    """Outdoor runs and rides with GPS from the shared corpus (one copy of each recording),
    the known cheats of ``REAL_POSITIVES`` left out."""
    return outdoor_recordings(shared, MIN_DURATION_S, skip=REAL_POSITIVES)


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
    return grouped_feature_rows((track, sport, None) for track, sport in tracks)[0]


def grouped_feature_rows(tracks) -> tuple[dict[str, list[np.ndarray]], dict[str, list]]:
    """Feature rows per sport of (track, sport, group) triples, and each row's group."""
    rows: dict[str, list[np.ndarray]] = {sport: [] for sport in SPORTS}
    groups: dict[str, list] = {sport: [] for sport in SPORTS}
    for track, sport, group in tracks:
        row = training_row(track_features(track, sport))
        if row is not None:
            rows[sport].append(row)
            groups[sport].append(group)
    return rows, groups


def stored_row(s, activity) -> np.ndarray | None:
    """A stored activity's row, from its points with those logged while paused taken out,
    as scoring computes its features (what a Spark job computes too: ``core.spark.features``)."""
    from core.activities.summary import recorded_track

    track, intervals, _ = recorded_track(s, activity)
    return training_row(track_features(track, activity.sport, pauses=intervals))


def training_row(features) -> np.ndarray | None:
    """An activity's row for the model, or None when it has none to give (too short, no
    movement, no speed)."""
    if features.usable and math.isfinite(features.values.get("log_avg_speed", math.nan)):
        return vector(features)
    return None


def population(real: list[tuple[str, Track]], window_count: int = 4, seed: int = 5) -> list[tuple[Track, str]]:
    """The real recordings and windows of them, each with its sport."""
    return [(track, sport) for track, sport, _ in population_groups(real, window_count, seed)]


def population_groups(real: list[tuple[str, Track]], window_count: int = 4,
                      seed: int = 5) -> list[tuple[Track, str, str]]:
    """The real recordings and windows of them, each with its sport and the recording's name."""
    rng = random.Random(seed)
    out = []
    for name, track in real:
        out.append((track, track.sport, name))
        out.extend((w, track.sport, name) for w in windows(track, rng, window_count))
    return out


def held_out_groups(groups: list, share: float, rng: random.Random) -> set:
    """Whole groups, drawn in a shuffled order, until they hold at least ``share`` of the rows."""
    counts = Counter(groups)
    keys = sorted(counts, key=str)
    rng.shuffle(keys)
    held, rows = set(), 0
    for key in keys:
        if rows >= int(len(groups) * share):
            break
        held.add(key)
        rows += counts[key]
    return held


def held_out_validation(rows: dict[str, list[np.ndarray]], groups: dict[str, list], seed: int = 1) -> dict:
    """How often ordinary activities would be flagged by the forest alone, on a fifth of them that
    a second forest (trained on the rest) never saw. Held out by group (a recording with its
    windows; each database activity alone), so nothing held out was trained on in part."""
    rng = random.Random(seed)
    validation = {}
    for sport, sport_rows in rows.items():
        validation[sport] = {"rows": len(sport_rows)}
        if len(sport_rows) // 5 < 5:
            continue
        held = held_out_groups(groups[sport], 0.2, rng)
        mask = np.array([g in held for g in groups[sport]])
        data = np.array(sport_rows)
        check = train_sport(data[~mask])
        flagged = check.probabilities(data[mask]) >= 0.5
        validation[sport] |= {"held_out": int(mask.sum()), "held_out_flag_rate": round(float(flagged.mean()), 4)}
    return validation
