"""Recording gaps as evidence: a gap whose ends lie further apart than anyone covers in its
time (a "lost signal" that hides a lift) is a reason to flag; a plausible gap, and every
real recording, is not."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.anomaly.features import track_features
from core.anomaly.limits import GAP_POSITION_ERROR_M, RIDE_FLAT_SPEED_MPS, RIDE_LEVEL_SPEED_MPS
from core.anomaly.rules import check, gap_speed_limit
from core.tracks.formats import TrackFileError, load_track
from core.tracks.track import Track

M_PER_DEG_LAT = 111_320.0
RUN_FILE = Path("goldencheetah") / "Garmin920_withFirstbeat.fit"


def gap_codes(track: Track, sport: str) -> list[str]:
    return [h.code for h in check(track_features(track, sport)) if h.code == "gap_speed"]


def with_gap(track: Track, start_s: float, gap_s: float, east_m: float) -> Track:
    """``track`` with its fixes from ``start_s`` into the recording for ``gap_s`` removed and
    everything after them moved so that the first fix after the gap lies ``east_m`` due east
    of the last fix before it (the times are kept)."""
    t0 = np.nanmin(track.t)
    rel = track.t - t0
    keep = ~((rel >= start_s) & (rel < start_s + gap_s))
    after = rel >= start_s + gap_s
    has_fix = np.isfinite(track.lat) & np.isfinite(track.lon)
    last = np.flatnonzero(has_fix & (rel < start_s))[-1]
    first = np.flatnonzero(has_fix & after)[0]
    lat, lon = track.lat.copy(), track.lon.copy()
    lat[after] += lat[last] - lat[first]
    lon[after] += lon[last] - lon[first] + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat[last])))
    return replace(track, t=track.t[keep], lat=lat[keep], lon=lon[keep], ele=track.ele[keep],
                   acc=track.acc[keep], hr=track.hr[keep], cad=track.cad[keep])


@pytest.fixture(scope="module")
def real_run(shared_tracks) -> Track:
    return load_track(shared_tracks / RUN_FILE)


def test_a_gap_that_hides_a_lift_is_flagged(real_run):
    span = float(np.nanmax(real_run.t) - np.nanmin(real_run.t))
    # Six minutes lost, resumed 5 km away: 50 km/h, a car, not a runner.
    lifted = with_gap(real_run, 0.4 * span, 360.0, 5000.0)
    hits = [h for h in check(track_features(lifted, "run")) if h.code == "gap_speed"]
    assert len(hits) == 1
    assert "the points stop for 6 min" in hits[0].reason and "5.0 km away" in hits[0].reason
    assert "faster than any runner holds for 6 min" in hits[0].reason
    assert hits[0].t1 - hits[0].t0 > 300
    # The teleport rule sees nothing here: the gap, not a jump, hides the lift.
    assert "teleport" not in {h.code for h in check(track_features(lifted, "run"))}


def test_a_plausible_gap_is_not_flagged(real_run):
    span = float(np.nanmax(real_run.t) - np.nanmin(real_run.t))
    # Six minutes lost, resumed 1.2 km away: 12 km/h, running on with no signal.
    lost = with_gap(real_run, 0.4 * span, 360.0, 1200.0)
    features = track_features(lost, "run")
    assert len(features.gaps) == 1 and features.gaps[0]["metres"] > 1000
    assert check(features) == []
    assert gap_codes(real_run, "run") == []


def straight_line(gap_s: float, gap_m: float, speed: float = 3.0, sport: str = "run") -> Track:
    """Ten minutes due north at ``speed``, a gap of ``gap_s`` ending ``gap_m`` further north,
    and ten minutes more."""
    t = np.arange(0.0, 600.0)
    north = speed * t
    t = np.concatenate([t, t[-1] + gap_s + t])
    north = np.concatenate([north, north[-1] + gap_m + north])
    n = t.size
    nan = np.full(n, np.nan)
    return Track(t=1.7e9 + t, lat=46.0 + north / M_PER_DEG_LAT, lon=np.full(n, 14.5), ele=nan, acc=nan,
                 hr=nan, cad=nan, sport=sport)


@pytest.mark.parametrize("gap_s", [120.0, 600.0, 3600.0])
def test_the_limit_is_the_record_pace_for_the_gaps_duration(gap_s):
    limit = gap_speed_limit("run", gap_s, 1.0)
    edge = limit * gap_s + GAP_POSITION_ERROR_M
    assert gap_codes(straight_line(gap_s, 0.98 * edge), "run") == []
    assert gap_codes(straight_line(gap_s, 1.02 * edge), "run") == ["gap_speed"]


def test_the_limits_come_from_the_records():
    # Half marathon 57:30, marathon 2:00:35: the pace held for exactly that long.
    assert gap_speed_limit("run", 3450.0, 1.0) == pytest.approx(21097.5 / 3450.0)
    assert gap_speed_limit("run", 7235.0, 1.0) == pytest.approx(42195 / 7235.0)
    # Longer than a marathon: no faster than the marathon's pace.
    assert gap_speed_limit("run", 3 * 3600.0, 1.0) == pytest.approx(42195 / 7235.0)
    # 10 km record 26:11, and the shorter the gap the faster.
    assert gap_speed_limit("run", 1571.0, 1.0) == pytest.approx(10000 / 1571.0)
    assert gap_speed_limit("run", 60.0, 1.0) > gap_speed_limit("run", 600.0, 1.0)
    # Rides: never below the level-road limit (above the hour record's 56.8 km/h) where the
    # gap does not descend; across a descent or without elevation, the flat-speed limit.
    assert gap_speed_limit("ride", 3600.0, 5000.0, 0.0) == RIDE_LEVEL_SPEED_MPS > 56792 / 3600
    assert gap_speed_limit("ride", 30.0, 5000.0, 0.0) > RIDE_LEVEL_SPEED_MPS
    assert gap_speed_limit("ride", 600.0, 5000.0, 200.0) == RIDE_FLAT_SPEED_MPS
    assert gap_speed_limit("ride", 600.0, 5000.0) == RIDE_FLAT_SPEED_MPS


def test_short_gaps_are_never_read_whatever_their_speed():
    # 900 m in 25 s is faster than any runner, but a GPS slip or a tunnel: left alone.
    assert track_features(straight_line(25.0, 900.0), "run").gaps == []


def test_a_gap_the_teleport_rule_reports_is_not_reported_twice():
    # 2 km in 30 s: a jump (several times faster than any runner) across a gap.
    codes = [h.code for h in check(track_features(straight_line(30.0, 2000.0), "run"))]
    assert codes.count("teleport") == 1 and "gap_speed" not in codes


def test_no_real_recording_has_a_gap_hit(shared_tracks):
    judged = 0
    for path in sorted(shared_tracks.glob("*/*")):
        if path.suffix.lower() not in (".gpx", ".tcx", ".fit"):
            continue
        try:
            track = load_track(path)
        except TrackFileError:
            continue
        # Each as its own sport; a run also as a ride (a ride as a run is a cheat of its own).
        for sport in (track.sport, "ride") if track.sport in ("run", "walk") else (track.sport,):
            assert gap_codes(track, sport) == [], f"{path.parent.name}/{path.name} as {sport}"
            judged += 1
    assert judged >= 78
