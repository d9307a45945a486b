"""Cleaning and statistics: reasons for dropped points, pauses, splits, and real devices."""

import csv
import math
import time

import numpy as np
import pytest

from core.tracks.cleaning import clean_track
from core.tracks.formats import load_track
from core.tracks.stats import summarise
from core.tracks.track import track_from_rows

T0 = 1_700_000_000.0


def straight_run(n=400, step_s=5.0, speed=3.0, lat0=46.05, lon0=14.5):
    """Points along a meridian at a steady speed (metres per degree of latitude ~111 km)."""
    rows = []
    for i in range(n):
        lat = lat0 + (i * step_s * speed) / 111_180.0
        rows.append((T0 + i * step_s, lat, lon0, 300.0, None, 150.0, None))
    return rows


def test_each_dropped_point_is_counted_under_its_reason():
    """Invalid, (0,0), NaN, duplicate, backwards, future, inaccurate and spiking points are dropped."""
    rows = straight_run(100)
    rows[10] = (rows[10][0], 0.0, 0.0, None, None, None, None)
    rows[20] = (rows[20][0], 91.5, 14.5, None, None, None, None)
    rows[30] = (rows[30][0], float("nan"), float("nan"), None, None, 150.0, None)
    rows.insert(41, rows[40])  # duplicate timestamp
    rows.insert(51, (rows[20][0], 46.05, 14.5, None, None, None, None))  # backwards
    rows.append((time.time() + 86_400, 46.1, 14.5, None, None, None, None))  # future
    lat, lon = rows[60][1], rows[60][2]
    rows[60] = (rows[60][0], lat, lon, None, 120.0, None, None)  # 120 m accuracy
    rows[70] = (rows[70][0], rows[70][1] + 0.02, rows[70][2], None, None, None, None)  # 2 km spike
    clean = clean_track(track_from_rows(rows, sport="run"))
    assert clean.dropped == {"invalid_position": 2, "no_position": 1, "duplicate_time": 1,
                             "backwards_time": 1, "future_time": 1, "poor_accuracy": 1, "speed_spike": 1}


def test_a_sustained_fast_stretch_is_kept_not_dropped_as_spikes():
    """A car-speed stretch is real movement for the anomaly detector, not a glitch."""
    rows = straight_run(200, step_s=5.0, speed=20.0)
    clean = clean_track(track_from_rows(rows, sport="run"))
    assert "speed_spike" not in clean.dropped
    assert len(clean) == 200


@pytest.mark.parametrize("wild", [[0], [0, 1], [-1], [-3, -2, -1], [0, -1]])
def test_wild_fixes_at_either_end_are_dropped_as_spikes(wild):
    """A device's first fixes before it has a lock (and its last) can land kilometres away:
    with no good point before (after) them to judge them from, they used to be kept, and one
    such fix made an 8 km run 63 km long, with a 0:00 fastest kilometre."""
    rows = straight_run(600, step_s=5.0, speed=8000 / 3000)
    for k in wild:
        t, lat, lon, *rest = rows[k]
        rows[k] = (t, lat + 0.5, lon, *rest)  # 55 km north
    clean = clean_track(track_from_rows(rows, sport="run"))
    assert clean.dropped == {"speed_spike": len(wild)}
    s = summarise(clean)
    assert s.distance_m == pytest.approx(8000 * (599 - len(wild)) / 599, rel=0.005)
    assert s.max_speed_mps < 3.0


@pytest.mark.parametrize(("wild", "spike"), [(0, 3), (-1, -4)])
def test_a_wild_end_fix_is_dropped_though_a_spike_follows_it_closely(wild, spike):
    """The track beyond the wild fix is steady but for one spike of its own: both go."""
    rows = straight_run(600, step_s=5.0, speed=8000 / 3000)
    for k, north in ((wild, 0.5), (spike, 0.01)):
        t, lat, lon, *rest = rows[k]
        rows[k] = (t, lat + north, lon, *rest)  # 55 km, and 1.1 km away and back
    clean = clean_track(track_from_rows(rows, sport="run"))
    assert clean.dropped == {"speed_spike": 2}
    s = summarise(clean)
    assert s.distance_m == pytest.approx(8000 * 598 / 599, rel=0.005) and s.max_speed_mps < 3.0


@pytest.mark.parametrize("spike", [1, -2])
def test_a_good_end_point_beside_a_spike_is_kept(spike):
    """The spike next to it is dropped alone: the end point can reach the track beyond it."""
    rows = straight_run(50, step_s=5.0, speed=3.0)
    t, lat, lon, *rest = rows[spike]
    rows[spike] = (t, lat + 0.01, lon, *rest)  # 1.1 km away, and back
    clean = clean_track(track_from_rows(rows, sport="run"))
    assert clean.dropped == {"speed_spike": 1} and len(clean) == 49
    assert summarise(clean).distance_m == pytest.approx(49 * 15, rel=0.01)


def test_a_fast_stretch_longer_than_a_few_fixes_at_an_end_is_kept():
    """Four fixes or more at an end, or a ride that ends in a car, are a stretch the anomaly
    detector must see, not wild fixes."""
    rows = straight_run(600, step_s=5.0, speed=8000 / 3000)
    for k in range(-4, 0):
        t, lat, lon, *rest = rows[k]
        rows[k] = (t, lat + 0.5, lon, *rest)
    assert "speed_spike" not in clean_track(track_from_rows(rows, sport="run")).dropped
    rows = straight_run(540, step_s=5.0, speed=3.0) + straight_run(60, step_s=5.0, speed=20.0)
    rows[540:] = [(T0 + (540 + i) * 5.0, rows[539][1] + (i + 1) * 100 / 111_180.0, lon, *rest)
                  for i, (_, _, lon, *rest) in enumerate(rows[540:])]
    clean = clean_track(track_from_rows(rows, sport="run"))
    assert "speed_spike" not in clean.dropped and len(clean) == 600


def test_steady_run_statistics():
    """A 6 km straight run at 3 m/s: distance, moving time, pace, splits and best km."""
    rows = straight_run(401, step_s=5.0, speed=3.0)
    s = summarise(clean_track(track_from_rows(rows, sport="run")))
    assert s.distance_m == pytest.approx(6000, rel=0.002)
    assert s.moving_time_s == pytest.approx(2000)
    assert s.elapsed_time_s == pytest.approx(2000)
    assert s.avg_pace_s_per_km == pytest.approx(333.3, rel=0.003)
    assert s.best_pace_1km_s_per_km == pytest.approx(333.3, rel=0.01)
    assert len(s.splits) == 6
    assert all(sp.pace_s_per_km == pytest.approx(333.3, rel=0.01) for sp in s.splits)
    assert s.max_speed_mps == pytest.approx(3.0, rel=0.02)


def test_a_pause_gap_counts_for_neither_time_nor_distance():
    """Ten minutes without points while standing still are a pause."""
    rows = straight_run(200)
    later = [(t + 995 + 600, la, lo, e, a, h, c) for (t, la, lo, e, a, h, c) in straight_run(200, lat0=rows[-1][1])]
    s = summarise(clean_track(track_from_rows(rows + later[1:], sport="run")))
    assert s.moving_time_s == pytest.approx(995 + 990)
    assert s.elapsed_time_s == pytest.approx(995 + 605 + 990)
    assert s.distance_m == pytest.approx(2 * 199 * 15, rel=0.01)


def test_standing_still_jitter_adds_little_distance():
    """Five minutes of GPS wander (1.5 m per axis) at one spot adds under 20 m."""
    rng = np.random.default_rng(3)
    rows = [(T0 + i, 46.05 + rng.normal(0, 1.5) / 111_180, 14.5 + rng.normal(0, 1.5) / 77_000, None, None, None, None)
            for i in range(300)]
    s = summarise(clean_track(track_from_rows(rows, sport="run")))
    assert s.distance_m < 20


def test_elevation_gain_and_loss_ignore_noise():
    """A 50 m climb and descent with 1 m noise gives about 50 m each way."""
    rng = np.random.default_rng(5)
    rows = straight_run(400)
    ele = np.concatenate([np.linspace(100, 150, 200), np.linspace(150, 100, 200)]) + rng.normal(0, 0.5, 400)
    rows = [(t, la, lo, float(e), a, h, c) for (t, la, lo, _, a, h, c), e in zip(rows, ele)]
    s = summarise(clean_track(track_from_rows(rows, sport="run")))
    assert s.elevation_gain_m == pytest.approx(50, abs=5)
    assert s.elevation_loss_m == pytest.approx(50, abs=5)


def device_comparison(shared_tracks):
    results = []
    with open(shared_tracks / "device_totals.csv") as fh:
        for row in csv.DictReader(fh):
            track = load_track(shared_tracks / row["file"])
            s = summarise(clean_track(track), points=len(track))
            results.append((row["file"], s.distance_m / float(row["device_total_distance_m"]) - 1,
                            s.moving_time_s / float(row["device_total_timer_time_s"]) - 1))
    return results


def test_distance_and_moving_time_agree_with_real_devices(shared_tracks):
    """Distance within 1% on at least 84% of the FIT files, moving time within 3% on 90%."""
    results = device_comparison(shared_tracks)
    assert len(results) == 38
    distance_ok = sum(abs(d) <= 0.01 for _, d, _ in results) / len(results)
    time_ok = sum(abs(t) <= 0.03 for _, _, t in results) / len(results)
    assert distance_ok >= 0.84, [(f, round(100 * d, 2)) for f, d, _ in results if abs(d) > 0.01]
    assert time_ok >= 0.90, [(f, round(100 * t, 2)) for f, _, t in results if abs(t) > 0.03]


def test_the_clock_glitch_file_keeps_its_real_two_hours(shared_tracks):
    """Records that jump two years ahead are dropped as a time jump."""
    track = load_track(shared_tracks / "goldencheetah/2013-04-11-17-32-50.fit")
    s = summarise(clean_track(track), points=len(track))
    assert s.dropped["time_jump"] > 0
    # The ride's own span (the device's timer says 6,799 s), not two years.
    assert s.elapsed_time_s == pytest.approx(7057, abs=60)
    assert s.moving_time_s == pytest.approx(6799.47, rel=0.03)
    assert math.isfinite(s.distance_m) and s.distance_m > 40_000
