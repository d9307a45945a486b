"""Climbs ridden as with a motor: a ride whose speed does not fall as its climbs steepen (legs
slow down on a steeper road, a motor that assists up to a set speed does not) is flagged for
a moderator with the figures in words; no real recording is, whatever sport it is judged as."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.anomaly.features import track_features
from core.anomaly.limits import ASSIST_MIN_CLIMB_S, ASSIST_MIN_WKG, ASSIST_SEVERITY, ASSIST_SPEED_RATIO
from core.anomaly.rules import REASON_LABELS, check
from core.anomaly.signals import RIDER_KG, speed_at_power, steady_power
from core.tracks.formats import load_track, readable_tracks
from core.tracks.geo import segment_lengths_m
from core.tracks.track import Track

M_PER_DEG_LAT = 111_320.0
RIDE_FILE = Path("goldencheetah") / "20130717_143733.fit"  # about 50 min of climbing


def assist_hits(track: Track, sport: str = "ride") -> list:
    return [h for h in check(track_features(track, sport)) if h.code == "assisted_climb"]


def assisted(track: Track, speed: float) -> Track:
    """``track`` with every stretch that climbs more than 2.5% over 200 m and was ridden slower
    than ``speed`` (m/s) ridden at ``speed`` instead: the same places, less time."""
    ok = np.isfinite(track.t) & np.isfinite(track.lat) & np.isfinite(track.lon) & np.isfinite(track.ele)
    track = track.take(np.flatnonzero(ok))
    steps = segment_lengths_m(track.lat, track.lon)
    dist = np.concatenate([[0.0], np.cumsum(steps)])
    grade = (np.interp(dist + 100, dist, track.ele) - np.interp(dist - 100, dist, track.ele)) / 200.0
    dts = np.diff(track.t)
    with np.errstate(divide="ignore", invalid="ignore"):
        slow = (grade[1:] > 0.025) & (dts > 0) & (steps / dts < speed) & (dts < 30)
    dts = np.where(slow, steps / speed, dts)
    return replace(track, t=track.t[0] + np.concatenate([[0.0], np.cumsum(dts)]))


@pytest.fixture(scope="module")
def real_ride(shared_tracks) -> Track:
    return load_track(shared_tracks / RIDE_FILE)


def test_the_real_ride_slows_as_its_climbs_steepen(real_ride):
    grades = track_features(real_ride, "ride").grades
    assert grades["seconds"] > ASSIST_MIN_CLIMB_S
    assert grades["steep_grade"] > 1.5 * grades["gentle_grade"]
    assert grades["steep_mps"] < 0.8 * grades["gentle_mps"]
    assert assist_hits(real_ride) == []


def test_its_climbs_ridden_at_an_assisted_24_kmh_are_flagged(real_ride):
    hits = assist_hits(assisted(real_ride, 24 / 3.6))
    assert len(hits) == 1
    hit = hits[0]
    assert hit.severity == ASSIST_SEVERITY and REASON_LABELS["assisted_climb"] == "climbs ridden as with a motor"
    assert hit.reason.startswith("rode the steeper climbs (")
    assert "of climbing: at the same effort a rider slows to about" in hit.reason
    assert "a motor that assists up to a set speed holds it" in hit.reason
    # The ride is flagged as a whole, moderators read why.
    from core.anomaly.model import judge

    features = track_features(assisted(real_ride, 24 / 3.6), "ride")
    verdict = judge(features, check(features), None)
    assert verdict.flagged and any("rode the steeper climbs" in r for r in verdict.reasons)


def test_the_speed_a_steady_effort_holds_follows_the_power_model():
    for speed, grade in ((6.0, 0.03), (4.0, 0.08), (9.0, 0.0)):
        assert speed_at_power(steady_power(speed, grade), grade) == pytest.approx(speed, rel=1e-6)
    # 250 W: about 22 km/h up 3%, about 11 km/h up 8%.
    assert 20 / 3.6 < speed_at_power(250.0, 0.03) < 24 / 3.6
    assert 9 / 3.6 < speed_at_power(250.0, 0.08) < 13 / 3.6


def climb(speeds_grades: list[tuple[float, float, float]]) -> Track:
    """A ride due north: (seconds, speed m/s, gradient) stretches one after another, a fix a second."""
    v = np.concatenate([np.full(int(s), sp) for s, sp, _ in speeds_grades])
    g = np.concatenate([np.full(int(s), gr) for s, _, gr in speeds_grades])
    north = np.concatenate([[0.0], np.cumsum(v[1:])])
    ele = 100.0 + np.concatenate([[0.0], np.cumsum((v * g)[1:])])
    n = v.size
    nan = np.full(n, np.nan)
    return Track(t=1.7e9 + np.arange(n, dtype=float), lat=46.0 + north / M_PER_DEG_LAT, lon=np.full(n, 14.5),
                 ele=ele, acc=nan, hr=nan, cad=nan, sport="ride")


def test_the_limits_at_their_boundaries():
    fast = 22 / 3.6
    flat = (600, fast, 0.0)
    # 12 minutes of climbing at 22 km/h on 3% and on 7%: a motor.
    motor = [flat, (360, fast, 0.03), (360, fast, 0.07), (360, fast, 0.03), (360, fast, 0.07), flat]
    assert len(assist_hits(climb(motor))) == 1
    # The same with the steeper climbs ridden as legs ride them: no reason.
    legs = speed_at_power(steady_power(fast, 0.03), 0.07)
    assert len(assist_hits(climb([flat, (360, fast, 0.03), (360, legs, 0.07), (360, fast, 0.03),
                                  (360, legs, 0.07), flat]))) == 0
    # Steep climbs kept just under ASSIST_SPEED_RATIO of the gentle speed: no reason.
    under = (ASSIST_SPEED_RATIO - 0.03) * fast
    assert assist_hits(climb([flat, (360, fast, 0.03), (360, under, 0.07), (360, fast, 0.03), (360, under, 0.07),
                              flat])) == []
    # Too little climbing to judge (under ASSIST_MIN_CLIMB_S).
    short = ASSIST_MIN_CLIMB_S / 4 - 60
    assert assist_hits(climb([flat, (short, fast, 0.03), (short, fast, 0.07), (short, fast, 0.03),
                              (short, fast, 0.07), flat])) == []
    # Slow enough that the steep stretches need less than ASSIST_MIN_WKG: a rider can push that.
    slow = speed_at_power(0.9 * ASSIST_MIN_WKG * RIDER_KG, 0.07)
    assert assist_hits(climb([flat, (360, slow, 0.03), (360, slow, 0.07), (360, slow, 0.03), (360, slow, 0.07),
                              flat])) == []
    # A run is never judged by it (a runner's pace barely changes on such grades).
    assert [h for h in check(track_features(replace(climb(motor), sport="run"), "run"))
            if h.code == "assisted_climb"] == []


def test_no_real_recording_is_flagged_for_an_assisted_climb(shared_tracks):
    judged = 0
    for path, track in readable_tracks(shared_tracks):
        for sport in (track.sport, "ride") if track.sport in ("run", "walk") else (track.sport,):
            assert assist_hits(track, sport if sport in ("run", "ride") else "ride") == [], \
                f"{path.parent.name}/{path.name} as {sport}"
            judged += 1
    assert judged >= 78


HILLY_RIDE = Path("sportstracker") / "2010-07-04-06-07-36.fit"  # six climbs, paced alike


def towed(track: Track, t0: float, t1: float, factor: float) -> Track:
    """``track`` with the fixes between ``t0`` and ``t1`` recorded ``factor`` times faster
    (the same places in less time) and everything after moved earlier to match."""
    t = track.t.copy()
    inside = (t > t0) & (t <= t1)
    t[inside] = t0 + (t[inside] - t0) / factor
    t[t > t1] -= (t1 - t0) * (1 - 1 / factor)
    return replace(track, t=t)


def test_one_hill_ridden_far_harder_than_the_rest_is_flagged(shared_tracks):
    ride = load_track(shared_tracks / HILLY_RIDE)
    hills = track_features(ride, "ride").hills
    assert len(hills) >= 4
    powers = sorted(h["wkg"] for h in hills)
    assert powers[-1] < 1.3 * float(np.median(powers[:-1]))  # the rider paces the climbs alike
    assert assist_hits(ride) == []
    # A tow up the longest climb at 2.5 times the rider's own speed there.
    hill = max(hills, key=lambda h: h["gain"])
    hits = assist_hits(towed(ride, hill["t0"], hill["t1"], 2.5))
    assert len(hits) == 1
    assert hits[0].reason.startswith("climbed ")
    assert "as hard as the rest, as with a motor or a tow" in hits[0].reason
    assert hits[0].t0 is not None and hits[0].t0 <= hill["t0"] + 60
    # Ridden 1.5 times as fast (a hard effort up one hill): no reason.
    assert assist_hits(towed(ride, hill["t0"], hill["t1"], 1.5)) == []
