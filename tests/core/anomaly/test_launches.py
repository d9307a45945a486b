"""Power from motion: a car in town traffic pulls away from every junction at 2-3 m/s², which
no rider repeats; a rider's own stop-and-go does not look like it, the cleaner keeps such a
drive whole (it used to cut it into "spikes"), and no real ride breaks the rule."""

from __future__ import annotations

import math

import numpy as np

from core.anomaly.features import track_features
from core.anomaly.rules import check
from core.tracks.cleaning import clean_track
from core.tracks.formats import readable_tracks
from core.tracks.track import Track

M_PER_DEG = 111_320.0


def profile(accel: float, top: float, cycles: int = 6, block_m: float = 350.0, wait_s: float = 20.0,
            brake: float = 3.0) -> np.ndarray:
    """Distance (m) each second: 10 min at 25 km/h, ``cycles`` times (wait at a junction,
    pull away at ``accel`` to ``top`` m/s, cruise, brake to a stop ``block_m`` on), 10 min more."""
    s, v, out = 0.0, 25 / 3.6, []
    for _ in range(600):
        s += v
        out.append(s)
    for _ in range(cycles):
        v = 0.0
        out.extend([s] * int(wait_s))
        end = s + block_m
        while s < end - 0.5:
            if v * v / (2 * brake) >= end - s:
                v = max(v - brake, 0.5)
            else:
                v = min(v + accel, top)
            s = min(s + v, end)
            out.append(s)
    v = 25 / 3.6
    for _ in range(600):
        s += v
        out.append(s)
    return np.asarray(out)


def ride(dist: np.ndarray, jitter_m: float = 1.5, seed: int = 4) -> Track:
    """A ride due east along ``dist`` with a little GPS jitter, heart rate and flat elevation."""
    rng = np.random.default_rng(seed)
    n = dist.size
    lat = 45.0 + rng.normal(0, jitter_m, n) / M_PER_DEG
    lon = 7.0 + (dist + rng.normal(0, jitter_m, n)) / (M_PER_DEG * math.cos(math.radians(45.0)))
    return Track(1.7e9 + np.arange(n, dtype=float), lat, lon, np.full(n, 200.0), np.full(n, 5.0),
                 np.full(n, 140.0), np.full(n, np.nan), sport="ride")


def launch_hits(track: Track) -> list:
    return [h for h in check(track_features(track, "ride")) if h.code == "launches"]


def test_a_car_pulling_away_at_every_junction_is_named():
    car = ride(profile(accel=2.5, top=40 / 3.6))
    hits = launch_hits(car)
    assert len(hits) == 1
    reason = hits[0].reason
    assert "pulled away from a standstill past 25" in reason and "6 times in" in reason
    assert "W/kg each time" in reason and "a car in traffic" in reason
    assert hits[0].t0 > 1.7e9 + 600 and hits[0].severity >= 0.5
    # Speeds riders reach (40 km/h), so no speed limit speaks: the pull-aways do.
    assert {h.code for h in check(track_features(car, "ride"))} == {"launches"}


def test_a_rider_in_stop_and_go_traffic_is_not():
    # A brisk rider: 0.8 m/s² up to 28 km/h at every junction.
    assert launch_hits(ride(profile(accel=0.8, top=28 / 3.6))) == []
    # Three car-like pull-aways are a sprinting rider, not a pattern.
    assert launch_hits(ride(profile(accel=2.5, top=40 / 3.6, cycles=3))) == []


def test_the_cleaner_keeps_a_stop_and_go_drive_whole_in_a_ride_and_in_a_run():
    dist = profile(accel=2.8, top=45 / 3.6)
    car = ride(dist)
    for sport in ("ride", "run"):
        clean = clean_track(car, now=float("inf")) if sport == "ride" else None
        if clean is not None:
            assert clean.dropped.get("speed_spike", 0) == 0
        features = track_features(Track(car.t, car.lat, car.lon, car.ele, car.acc, car.hr, car.cad, sport=sport),
                                  sport)
        assert features.series.dist_m[-1] > 0.97 * dist[-1]


def test_no_real_ride_pulls_away_like_a_car(shared_tracks):
    rides = 0
    for path, track in readable_tracks(shared_tracks):
        if track.sport != "ride" or track.gps_points < 100 or track.indoor:
            continue
        rides += 1
        assert launch_hits(track) == [], path.name
    assert rides >= 20
