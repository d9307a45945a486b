"""Copies of another athlete's activity, disguised as a thief would (re-timed, ends cropped,
positions jittered or shifted), are found on real recordings; honest outings on the same
course, in either direction, are not copies of each other."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.anomaly.cheats import finite
from core.anomaly.detector import fingerprint_of
from core.anomaly.duplicates import DRIFT_MAX, compare
from core.anomaly.features import track_features
from core.tracks.formats import load_track
from core.tracks.track import Track

M_PER_DEG = 111_320.0
RECORDINGS = [Path("goldencheetah") / "Garmin920_withFirstbeat.fit",  # a run
              Path("sportstracker") / "Garmin_Edge_820-Cycling.fit"]  # a ride


def retimed(track: Track, factor: float) -> Track:
    return replace(track, t=track.t[0] + (track.t - track.t[0]) * factor)


def cropped(track: Track, head: float, tail: float) -> Track:
    n = len(track)
    return track.take(np.arange(int(n * head), int(n * (1 - tail))))


def moved(track: Track, east_m: np.ndarray | float, north_m: np.ndarray | float) -> Track:
    lat0 = math.radians(float(np.nanmean(track.lat)))
    return replace(track, lat=track.lat + north_m / M_PER_DEG, lon=track.lon + east_m / (M_PER_DEG * math.cos(lat0)))


def jittered(track: Track, metres: float, seed: int) -> Track:
    rng = np.random.default_rng(seed)
    return moved(track, rng.normal(0, metres, len(track)), rng.normal(0, metres, len(track)))


DISGUISES = {
    "slowed down a third": lambda t: retimed(t, 1.35),
    "sped up a fifth": lambda t: retimed(t, 1 / 1.2),
    "ends cropped": lambda t: cropped(t, 0.1, 0.08),
    "a fifth of it cropped, and slowed": lambda t: retimed(cropped(t, 0.12, 0.1), 1.15),
    "positions jittered 5 m": lambda t: jittered(t, 5.0, 3),
    "moved 15 m": lambda t: moved(t, 12.0, 9.0),
}


def print_of(track: Track, sport: str) -> dict:
    fp = fingerprint_of(track_features(track, sport))
    assert fp is not None
    return fp


@pytest.fixture(scope="module")
def originals(shared_tracks) -> dict[str, tuple[Track, dict]]:
    out = {}
    for path in RECORDINGS:
        track = finite(load_track(shared_tracks / path))
        out[path.name] = (track, print_of(track, track.sport))
    return out


@pytest.mark.parametrize("disguise", sorted(DISGUISES))
@pytest.mark.parametrize("recording", [p.name for p in RECORDINGS])
def test_a_disguised_copy_is_found(originals, recording, disguise):
    track, original = originals[recording]
    copy = DISGUISES[disguise](track)
    copy = replace(copy, t=copy.t + 200 * 86400.0)  # uploaded on another day
    result = compare(print_of(copy, track.sport), original)
    assert result is not None and result["same"], result
    assert result["drift"] <= DRIFT_MAX


@pytest.mark.parametrize("pair", [
    ("2018-10-03-07-45-28.fit", "2018-10-03-08-05-11.fit"),  # one rider, one course, one morning
    ("2018-10-03-08-23-16.fit", "2018-10-03-07-45-28.fit"),
    ("2018-10-03-08-23-16.fit", "2018-10-03-08-05-11.fit"),
    ("activity_790564264.tcx", "activity_790564346.tcx"),
])
def test_honest_outings_on_the_same_course_are_not_copies(shared_tracks, pair):
    prints = [print_of(load_track(shared_tracks / "goldencheetah" / name), "ride") for name in pair]
    for a, b in (prints, prints[::-1]):
        result = compare(a, b)
        # Their routes agree (so the timing is what tells them apart) ...
        assert result is not None and result["share"] > 0.5
        # ... and neither is a copy of the other.
        assert not result["same"], result


def test_a_copy_slowed_beyond_any_disguise_or_of_another_route_is_not_matched(originals):
    track, original = originals[RECORDINGS[0].name]
    assert not compare(print_of(retimed(track, 2.5), track.sport), original)["same"]
    elsewhere = moved(track, 3000.0, 0.0)
    result = compare(print_of(elsewhere, track.sport), original)
    assert result is not None and result["share"] == 0.0 and not result["same"]


def test_a_copy_of_one_lap_of_a_lapped_course_is_aligned_with_its_own_pass():
    """Three laps of a 2 km loop, the second lap slower: a copy of laps two and three is
    aligned with those laps (its spots follow the original in order), not the first."""
    rng = random.Random(4)
    speed = np.concatenate([np.full(700, 3.0), np.full(800, 2.6), np.full(700, 3.1)])
    speed = speed * np.array([1 + 0.08 * math.sin(k / 40) + rng.uniform(-0.02, 0.02) for k in range(speed.size)])
    s = np.cumsum(speed)
    angle = 2 * math.pi * s / 2000.0
    radius = 2000.0 / (2 * math.pi)
    n = s.size
    nan = np.full(n, np.nan)
    lap = Track(t=1.7e9 + np.arange(n, dtype=float), lat=46.0 + radius * np.sin(angle) / M_PER_DEG,
                lon=14.5 + radius * (1 - np.cos(angle)) / (M_PER_DEG * math.cos(math.radians(46.0))),
                ele=nan, acc=nan, hr=nan, cad=nan, sport="run")
    original = print_of(lap, "run")
    copy = replace(lap.take(np.arange(700, n)), t=lap.t[700:] + 86400.0 * 90)
    result = compare(print_of(copy, "run"), original)
    assert result["same"] and result["slope"] == pytest.approx(1.0, abs=0.02)
