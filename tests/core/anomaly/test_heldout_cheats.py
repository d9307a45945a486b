"""The held-out cheat family: every kind is reproducible for a seed, keeps a strictly
increasing clock and equal columns, does what it promises on real recordings, and answers
None (never an exception) for a recording that cannot make it."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.anomaly.heldout_cheats import KINDS, make
from core.tracks.formats import load_track
from core.tracks.geo import distance_m, local_xy, segment_lengths_m, track_length_m
from core.tracks.track import COLUMNS, Track

M_PER_DEG_LAT = 111_320.0
KMH = 3.6
RUN_FILE = Path("goldencheetah") / "Garmin920_withFirstbeat.fit"  # 7.4 km, 1 s, heart rate and cadence
COARSE_RUN_FILE = Path("pytrainer") / "gpxplus_sample.gpx"  # 10 km logged every 5-6 s
RIDE_FILE = Path("sportstracker") / "Garmin_Edge_820-Cycling.fit"  # 51 km every 3 s, a 235 m climb
FINE_RIDE_FILE = Path("tcxreader") / "mapmyride_biking.tcx"  # 17 km every second
SEEDS = (1, 2, 3)
# Kinds that lay their new fixes at the source's own interval.
KEEPS_INTERVAL = ("vehicle", "traffic", "gap_lift", "compressed", "teleport", "climb_motor")


@pytest.fixture(scope="module")
def real(shared_tracks) -> dict[str, Track]:
    files = {"run": RUN_FILE, "coarse_run": COARSE_RUN_FILE, "ride": RIDE_FILE, "fine_ride": FINE_RIDE_FILE}
    return {key: load_track(shared_tracks / path) for key, path in files.items()}


def synthetic(sport: str = "ride", n: int = 1500, dt: float = 1.0, speed: float = 6.0,
              climb: float = 0.0, elevation: bool = True) -> Track:
    """A gently curving recording with GPS noise; ``climb`` is the grade of its middle third."""
    gen = np.random.default_rng(11)
    step = np.full(n - 1, speed * dt)
    heading = 0.6 * np.sin(np.arange(n - 1) * speed * dt / 1500.0)
    east = np.concatenate([[0.0], np.cumsum(step * np.cos(heading))]) + gen.normal(0, 1.0, n)
    north = np.concatenate([[0.0], np.cumsum(step * np.sin(heading))]) + gen.normal(0, 1.0, n)
    along = np.concatenate([[0.0], np.cumsum(step)])
    third = along[-1] / 3
    ele = 200.0 + climb * np.clip(along - third, 0.0, third) if elevation else np.full(n, np.nan)
    lat = 46.0 + north / M_PER_DEG_LAT
    lon = 14.0 + east / (M_PER_DEG_LAT * math.cos(math.radians(46.0)))
    return Track(t=1.6e9 + np.arange(n) * dt, lat=lat, lon=lon, ele=ele, acc=np.full(n, np.nan),
                 hr=np.round(140 + 5 * np.sin(np.arange(n) / 60)), cad=np.full(n, 85.0), sport=sport)


def new_fixes(source: Track, out: Track) -> np.ndarray:
    """Rows of ``out`` holding a position that ``source`` never recorded."""
    known = set(zip(source.lat.tolist(), source.lon.tolist()))
    return np.array([math.isfinite(a) and (a, b) not in known
                     for a, b in zip(out.lat.tolist(), out.lon.tolist())], dtype=bool)


def fix_speeds_kmh(track: Track, rows: np.ndarray) -> np.ndarray:
    rows = rows[np.isfinite(track.lat[rows])]
    return segment_lengths_m(track.lat[rows], track.lon[rows]) / np.diff(track.t[rows]) * KMH


def distance_to_route_m(source: Track, out: Track) -> np.ndarray:
    """How far each of ``out``'s fixes lies from the nearest of ``source``'s."""
    a = np.isfinite(source.lat) & np.isfinite(source.lon)
    b = np.isfinite(out.lat) & np.isfinite(out.lon)
    x, y = local_xy(np.concatenate([source.lat[a], out.lat[b]]), np.concatenate([source.lon[a], out.lon[b]]))
    k = int(a.sum())
    sx, sy, ox, oy = x[:k], y[:k], x[k:], y[k:]
    return np.array([np.min(np.hypot(sx - px, sy - py)) for px, py in zip(ox, oy)])


def recorded_span_s(track: Track) -> float:
    """Seconds from the first fix to the last: the recording's own time axis, not a timing."""
    return float(np.nanmax(track.t) - np.nanmin(track.t))


def length_m(track: Track) -> float:
    ok = np.isfinite(track.lat) & np.isfinite(track.lon)
    return track_length_m(track.lat[ok], track.lon[ok])


def same(a: Track | None, b: Track | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.sport == b.sport and all(np.array_equal(getattr(a, c), getattr(b, c), equal_nan=True)
                                      for c in COLUMNS)


def assert_well_formed(out: Track) -> None:
    assert {getattr(out, c).size for c in COLUMNS} == {len(out)}
    assert np.all(np.isfinite(out.t))
    assert np.all(np.diff(out.t) > 0)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_reproducible_and_well_formed(real, kind):
    made = 0
    for key, track in real.items():
        steps = np.diff(track.t[np.isfinite(track.t)])
        usual = np.percentile(steps[steps > 0], [25, 75])
        for seed in SEEDS:
            out = make(kind, track, random.Random(seed))
            assert same(out, make(kind, track, random.Random(seed)))
            if out is None:
                continue
            made += 1
            assert_well_formed(out)
            if kind in KEEPS_INTERVAL:
                assert usual[0] <= float(np.median(np.diff(out.t))) <= usual[1], key
    assert made > 0


def test_different_seeds_give_different_samples(real):
    a = make("vehicle", real["run"], random.Random(1))
    b = make("vehicle", real["run"], random.Random(2))
    assert not same(a, b)


def test_vehicle_drives_a_stretch_of_the_route_at_car_speed(real):
    for key, lo_km, hi_km in (("run", 2.0, 6.0), ("coarse_run", 2.0, 6.0), ("ride", 4.0, 12.0),
                              ("fine_ride", 4.0, 12.0)):
        source = real[key]
        for seed in SEEDS:
            out = make("vehicle", source, random.Random(seed))
            assert out is not None and out.sport == source.sport
            rows = np.flatnonzero(new_fixes(source, out))
            stretch = np.arange(rows[0] - 1, rows[-1] + 2)
            speeds = fix_speeds_kmh(out, stretch)
            # The route the car covered, on the recorded path, and its speeds.
            driven = length_m(out.take(stretch))
            assert lo_km * 0.9 <= driven / 1000 <= hi_km * 1.1, (key, seed, driven)
            assert speeds.max() <= 90.0
            fast = speeds[speeds >= 40.0]
            assert fast.size and 43.0 <= np.median(fast) <= 86.0
            assert np.count_nonzero(speeds >= 44.0) * np.median(np.diff(out.t)) >= 60.0
            # The car beats the athlete, and the rest follows in time (at 100 m a fix, a
            # winding road measures a little shorter).
            assert recorded_span_s(out) < recorded_span_s(source)
            assert length_m(out) == pytest.approx(length_m(source), rel=0.05)


def test_vehicle_heart_rate_falls_toward_rest_during_the_drive(real):
    source = real["run"]
    out = make("vehicle", source, random.Random(4))
    rows = np.flatnonzero(new_fixes(source, out))
    hr = out.hr[rows]
    assert np.isfinite(hr).all()
    assert hr[-10:].mean() < out.hr[rows[0] - 1] - 10
    assert np.all(out.cad[rows] == 0)


@pytest.mark.parametrize("key", ["ride", "fine_ride"])
def test_traffic_stops_again_and_again_and_never_passes_52(real, key):
    source = real[key]
    for seed in SEEDS:
        out = make("traffic", source, random.Random(seed))
        assert out is not None
        rows = np.flatnonzero(new_fixes(source, out))
        stretch = np.arange(rows[0] - 1, rows[-1] + 2)
        speeds = fix_speeds_kmh(out, stretch)
        assert speeds.max() <= 52.0
        assert speeds.max() >= 20.0
        driven = length_m(out.take(stretch))
        assert 900.0 <= driven <= 5500.0
        # Stopped: consecutive slow steps that add up to 8 s or more.
        slow = speeds < 7.0
        steps = np.diff(out.t[stretch])
        stops, held = 0, 0.0
        for is_slow, secs in zip(slow, steps):
            held = held + secs if is_slow else 0.0
            if is_slow and held >= 8.0 and held - secs < 8.0:
                stops += 1
        assert stops >= max(1, math.ceil(driven / 900.0) - 1), (seed, stops, driven)


def test_traffic_is_for_rides_only(real):
    assert make("traffic", real["run"], random.Random(1)) is None
    assert make("traffic", synthetic("run", speed=3.0), random.Random(1)) is None


@pytest.mark.parametrize("key", ["run", "coarse_run"])
def test_gap_lift_hides_a_drive_in_one_lost_signal(real, key):
    source = real[key]
    for seed in SEEDS:
        out = make("gap_lift", source, random.Random(seed))
        assert out is not None and out.sport == "run"
        steps = np.diff(out.t)
        rows = np.flatnonzero(steps >= 120.0)
        far = [k for k in rows if distance_m(out.lat[k], out.lon[k], out.lat[k + 1], out.lon[k + 1]) >= 1500.0]
        assert len(far) == 1
        k = far[0]
        assert 120.0 <= steps[k] <= 1200.0
        # At least 1.5 km of the route hidden, in less time than the run took.
        across = distance_m(out.lat[k], out.lon[k], out.lat[k + 1], out.lon[k + 1])
        assert length_m(out) - across <= length_m(source) - 1450.0
        assert recorded_span_s(out) < recorded_span_s(source)


def test_gap_lift_is_for_runs_only(real):
    assert make("gap_lift", real["ride"], random.Random(1)) is None


def test_compressed_takes_less_time_for_the_same_route(real):
    for key, source in real.items():
        for seed in SEEDS:
            out = make("compressed", source, random.Random(seed))
            assert out is not None
            assert recorded_span_s(out) <= 0.96 * recorded_span_s(source), (key, seed)
            assert length_m(out) == pytest.approx(length_m(source), rel=0.03)
            # Resampled on the recorded path: between neighbouring fixes, never off it.
            ok = np.isfinite(source.lat)
            spacing = float(np.median(segment_lengths_m(source.lat[ok], source.lon[ok])))
            off = distance_to_route_m(source, out.take(np.arange(0, len(out), 10)))
            assert np.median(off) <= 0.5 * spacing + 0.5


def test_ride_as_run_uploads_a_ride_as_a_run(real):
    for key in ("ride", "fine_ride"):
        source = real[key]
        outs = [make("ride_as_run", source, random.Random(seed)) for seed in range(8)]
        assert all(out is not None and out.sport == "run" for out in outs)
        assert any(not np.isfinite(out.cad).any() for out in outs)
        assert all(length_m(out) == pytest.approx(length_m(source), rel=0.02) for out in outs)
        intervals = {float(np.median(np.diff(out.t))) for out in outs}
        assert intervals <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_ride_as_run_skips_runs_and_recordings_named_as_runs(real):
    assert make("ride_as_run", real["run"], random.Random(1)) is None
    named = replace(real["fine_ride"], name="goldencheetah/Edge705-Running-2Laps.tcx")
    assert make("ride_as_run", named, random.Random(1)) is None
    # A "ride" at a run's pace is a mislabelled run, not a cheat.
    assert make("ride_as_run", synthetic("ride", speed=3.0), random.Random(1)) is None


def test_teleport_moves_fixes_far_off_the_route_or_skips_a_stretch(real):
    variants = set()
    for key, source in real.items():
        for seed in range(6):
            out = make("teleport", source, random.Random(seed))
            assert out is not None
            ok = np.isfinite(out.lat)
            jump = segment_lengths_m(out.lat[ok], out.lon[ok]).max()
            ok = np.isfinite(source.lat)
            usual = segment_lengths_m(source.lat[ok], source.lon[ok]).max()
            if len(out) < len(source):
                variants.add("cut")
                assert jump >= 150.0 and jump > usual, (key, seed)
                # At least 600 m of route gone, crossed in one step.
                assert length_m(out) - jump <= length_m(source) - 550.0
            else:
                variants.add("moved")
                # Each fix against where it was recorded at the same moment.
                _, a, b = np.intersect1d(out.t, source.t, return_indices=True)
                moved = [distance_m(out.lat[i], out.lon[i], source.lat[j], source.lon[j])
                         for i, j in zip(a, b) if np.isfinite(out.lat[i]) and np.isfinite(source.lat[j])]
                assert max(moved) >= 250.0, (key, seed)
                assert np.median(moved) < 1.0
    assert variants == {"cut", "moved"}


def test_climb_motor_is_faster_up_the_climb_and_the_same_elsewhere(real):
    for key in ("ride", "fine_ride"):
        source = real[key]
        for seed in SEEDS:
            out = make("climb_motor", source, random.Random(seed))
            assert out is not None and out.sport == "ride"
            assert recorded_span_s(out) <= recorded_span_s(source) - 90.0
            assert length_m(out) == pytest.approx(length_m(source), rel=0.02)
            rows = np.flatnonzero(new_fixes(source, out))
            # The new fixes climb: their smoothed height ends well above where it started.
            ele = out.ele[rows]
            assert np.nanmean(ele[-20:]) - np.nanmean(ele[:20]) >= 30.0
            # Before the climb nothing changed.
            assert np.array_equal(out.t[: rows[0]], source.t[: rows[0]])


def test_climb_motor_needs_a_ride_with_a_climb():
    steep = synthetic("ride", n=2400, speed=3.5, climb=0.07)
    out = make("climb_motor", steep, random.Random(1))
    assert out is not None and recorded_span_s(out) <= recorded_span_s(steep) - 90.0
    assert make("climb_motor", synthetic("ride", climb=0.0), random.Random(1)) is None
    assert make("climb_motor", synthetic("ride", climb=0.07, elevation=False), random.Random(1)) is None
    assert make("climb_motor", synthetic("run", speed=3.0, climb=0.07), random.Random(1)) is None


def test_copy_is_the_same_route_on_a_new_date(real):
    for key, source in real.items():
        interval = float(np.median(np.diff(source.t)))
        for seed in SEEDS:
            out = make("copy", source, random.Random(seed))
            assert out is not None and out.sport == source.sport
            later = out.t[0] - source.t[0]
            assert 13 * 86400 <= later <= 366 * 86400
            assert float(np.median(np.diff(out.t))) != pytest.approx(interval, abs=0.5)
            off = distance_to_route_m(source, out.take(np.arange(0, len(out), 4)))
            assert np.median(off) <= 10.0, (key, seed)
            assert np.percentile(off, 90) <= 25.0
            assert 0.8 * length_m(source) <= length_m(out) <= 1.05 * length_m(source)


def test_short_or_unsuitable_recordings_give_none():
    tiny = synthetic("ride", n=30)
    for kind in KINDS:
        assert make(kind, tiny, random.Random(1)) is None
    walk = replace(synthetic("ride"), sport="walk")
    assert all(make(kind, walk, random.Random(1)) is None for kind in KINDS)
    # A ride too short for a vehicle stretch of 4 km.
    assert make("vehicle", synthetic("ride", n=400), random.Random(1)) is None


def test_a_messy_clock_still_gives_a_strictly_increasing_one():
    track = synthetic("run", n=2500, speed=3.0)
    t = track.t.copy()
    t[100] = t[99]  # repeated
    t[200] = t[150]  # backwards
    t[300] = np.nan  # missing
    t[400] = t[400] + 10 * 86400  # clock glitch
    lat = track.lat.copy()
    lat[500:520] = np.nan  # lost fixes
    messy = replace(track, t=t, lat=lat)
    for kind in KINDS:
        for seed in SEEDS:
            out = make(kind, messy, random.Random(seed))
            if out is not None:
                assert_well_formed(out)


def test_an_unknown_kind_is_an_error():
    with pytest.raises(ValueError):
        make("jetpack", synthetic(), random.Random(1))
