"""Climbing faster than anyone: the most metres gained over 5, 10, 20 or 40 minutes of
smoothed elevation against what the best riders and runners hold for that long (a motor,
or a tow up the steepest climb), and never a real recording or an altitude glitch."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.anomaly.features import track_features
from core.anomaly.limits import CLIMB_RATE_LIMIT_M_PER_H
from core.anomaly.rules import REASON_LABELS, check
from core.anomaly.signals import smooth_elevation
from core.tracks.formats import load_track, readable_tracks
from core.tracks.track import Track

M_PER_DEG_LAT = 111_320.0
# The real ride with the steepest climb among the shared recordings (about 400 m in 20 min).
RIDE_FILE = Path("goldencheetah") / "20130717_143733.fit"


def climb_hits(track: Track, sport: str) -> list:
    return [h for h in check(track_features(track, sport)) if h.code == "climb_rate"]


def compress(track: Track, t0: float, t1: float, factor: float) -> Track:
    """``track`` with the fixes between ``t0`` and ``t1`` recorded ``factor`` times faster
    (the same places and heights in less time) and everything after moved earlier to match."""
    t = track.t.copy()
    inside = (t > t0) & (t <= t1)
    t[inside] = t0 + (t[inside] - t0) / factor
    t[t > t1] -= (t1 - t0) * (1 - 1 / factor)
    return replace(track, t=t)


@pytest.fixture(scope="module")
def real_ride(shared_tracks) -> Track:
    return load_track(shared_tracks / RIDE_FILE)


def test_the_real_ride_climbs_within_the_limits(real_ride):
    assert climb_hits(real_ride, "ride") == []


def test_its_steepest_climb_ridden_twice_as_fast_is_flagged(real_ride):
    climb = track_features(real_ride, "ride").climbs[1200]
    assert climb["metres"] > 350  # a real climb of about 1,200 m an hour
    towed = compress(real_ride, climb["t0"], climb["t1"], 2.0)
    hits = climb_hits(towed, "ride")
    assert len(hits) == 1
    hit = hits[0]
    assert f"in 10 min from {int((climb['t0'] - np.nanmin(real_ride.t)) // 60)}:" in hit.reason
    assert "more than the best riders hold for 10 min (about 2,300 m per hour)" in hit.reason
    # The 10 minutes now gain what 20 did: twice the rate.
    metres = float(hit.reason.split("climbed ")[1].split(" m")[0])
    assert metres == pytest.approx(climb["metres"], rel=0.03)
    assert climb["t0"] - 60 <= hit.t0 and hit.t1 <= climb["t0"] + 660
    assert REASON_LABELS["climb_rate"] == "climbed faster than anyone"


def climbing_line(rate_m_per_h: float, climb_s: float, sport: str = "ride", speed: float = 5.0,
                  step_m: float = 0.0, hole_s: float = 0.0) -> Track:
    """An hour due north at ``speed``: flat, then ``climb_s`` seconds rising at
    ``rate_m_per_h`` from 20 minutes in, then flat again; ``step_m``: an altitude step in 30 s
    at 30 minutes instead; ``hole_s``: no elevation for that long from 20 minutes in."""
    t = np.arange(0.0, 3600.0)
    rel = np.clip(t - 1200.0, 0.0, climb_s)
    ele = 300.0 + rel * rate_m_per_h / 3600.0 + step_m * np.clip((t - 1800.0) / 30.0, 0.0, 1.0)
    if hole_s:
        ele[(t >= 1200.0) & (t < 1200.0 + hole_s)] = np.nan
    n = t.size
    nan = np.full(n, np.nan)
    return Track(t=1.7e9 + t, lat=46.0 + speed * t / M_PER_DEG_LAT, lon=np.full(n, 14.5), ele=ele, acc=nan,
                 hr=nan, cad=nan, sport=sport)


@pytest.mark.parametrize("sport", ["ride", "run"])
@pytest.mark.parametrize("seconds", sorted(CLIMB_RATE_LIMIT_M_PER_H))
def test_the_limit_for_each_duration(seconds, sport):
    limit = CLIMB_RATE_LIMIT_M_PER_H[seconds]
    # Two minutes longer than the window: the smoothing rounds the climb's ends off.
    assert climb_hits(climbing_line(0.98 * limit, seconds + 120, sport), sport) == []
    hits = climb_hits(climbing_line(1.02 * limit, seconds + 120, sport), sport)
    assert len(hits) == 1
    noun = "riders" if sport == "ride" else "runners"
    minutes = seconds // 60
    assert f"more than the best {noun} hold for {minutes} min (about {limit:,.0f} m per hour)" in hits[0].reason
    # The climb starts 20 minutes in and lasts two minutes longer than the window.
    found = re.match(rf"climbed (\d+) m in {minutes} min from (19|2[0-2]):\d\d in: ", hits[0].reason)
    assert found, hits[0].reason
    assert float(found[1]) == pytest.approx(1.02 * limit * seconds / 3600, rel=0.01)


def test_an_altitude_step_is_no_climb():
    # 300 m up in 30 s on flat road: a barometer recalibrating or GPS altitude jumping.
    assert climb_hits(climbing_line(0.0, 0.0, step_m=300.0), "ride") == []
    # A 75 m step in the middle of a hard climb (1,800 m an hour for 12 min): still human.
    assert climb_hits(climbing_line(1800.0, 720.0, step_m=75.0), "ride") == []


def test_smoothed_elevation_takes_out_a_step_and_keeps_the_road():
    grid = np.arange(0.0, 900.0)
    # 90 m up within 2 s at 5 minutes, on flat road: gone, the level either side is the same.
    stepped = 300.0 + 90.0 * np.clip((grid - 300.0) / 2.0, 0.0, 1.0)
    smooth = smooth_elevation(grid, stepped, grid)
    assert abs(smooth[-60] - smooth[60]) < 1.0
    # The same step half-way up a steady climb (1,800 m an hour): the climb stays, the step goes.
    climb = 300.0 + 0.5 * grid + 90.0 * np.clip((grid - 450.0) / 2.0, 0.0, 1.0)
    smooth = smooth_elevation(grid, climb, grid)
    assert smooth[-60] - smooth[60] == pytest.approx(0.5 * 780, abs=5.0)
    # GPS altitude that dips 40 m in 6 s and climbs back over half a minute is noise, not a
    # step: after it the level is where it was.
    dip = np.full(grid.size, 300.0)
    dip[300:306] -= np.linspace(0.0, 40.0, 6)
    dip[306:336] -= np.linspace(40.0, 0.0, 30)
    smooth = smooth_elevation(grid, dip, grid)
    assert abs(smooth[-60] - smooth[60]) < 1.0
    # A fast real rise (a car up a 10% road at 100 km/h: 2.8 m/s) is road, not a step.
    car = 300.0 + 2.8 * np.clip(grid - 300.0, 0.0, 120.0)
    smooth = smooth_elevation(grid, car, grid)
    assert smooth[-60] - smooth[60] == pytest.approx(2.8 * 120, rel=0.02)


def test_an_altimeter_step_in_a_real_ride_is_no_effort(shared_tracks):
    # A barometer recalibrating, or a switch between GPS and barometric altitude, moves every
    # height after it by 90 m or more: no climb, power or assisted-climb reason may come of it.
    efforts = {"beyond_human_power", "climb_rate", "assisted_climb"}
    judged = 0
    for path, track in readable_tracks(shared_tracks):
        if track.sport != "ride" or track.indoor or np.isfinite(track.ele).mean() < 0.8 or track.gps_points < 100:
            continue
        order = np.argsort(track.t, kind="stable")
        t = track.t[order]
        before = {h.code for h in check(track_features(track, "ride"))} & efforts
        for share, metres in ((0.4, 90.0), (0.5, -90.0), (0.7, 150.0)):
            ele = track.ele[order].copy()
            ele[t >= np.nanquantile(t, share)] += metres
            stepped = replace(track, t=t, lat=track.lat[order], lon=track.lon[order], ele=ele, acc=track.acc[order],
                              hr=track.hr[order], cad=track.cad[order])
            found = {h.code for h in check(track_features(stepped, "ride"))} & efforts
            assert found <= before, f"{path.parent.name}/{path.name} with {metres:+.0f} m at {share:.0%}: {found}"
            judged += 1
    assert judged >= 45


def test_a_stretch_without_elevation_is_not_read_as_a_climb():
    # 10 minutes without elevation, 400 m higher after them: unknown, not 2,400 m an hour.
    holed = climbing_line(2400.0, 600.0, hole_s=600.0)
    assert np.isnan(holed.ele).mean() < 0.2
    assert climb_hits(holed, "ride") == []
    assert len(climb_hits(climbing_line(2400.0, 600.0), "ride")) == 1


def test_no_real_recording_climbs_faster_than_anyone(shared_tracks):
    judged = 0
    for path, track in readable_tracks(shared_tracks):
        # Each as its own sport; a run or a walk also as a ride.
        for sport in (track.sport, "ride") if track.sport in ("run", "walk") else (track.sport,):
            assert climb_hits(track, sport) == [], f"{path.parent.name}/{path.name} as {sport}"
            judged += 1
    assert judged >= 78
