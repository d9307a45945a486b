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
from core.anomaly.rules import check, gap_speed_limit, held_own
from core.tracks.formats import load_track, readable_tracks
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
    # A fast runner (7 m/s either side), so that the record, not their own pace, is the bound.
    assert gap_codes(straight_line(gap_s, 0.98 * edge, speed=7.0), "run") == []
    assert gap_codes(straight_line(gap_s, 1.02 * edge, speed=7.0), "run") == ["gap_speed"]


def test_a_gap_crossed_far_faster_than_the_athlete_moves_elsewhere_is_flagged():
    # A 9 km/h jogger either side; ten minutes lost and 2.5 km away in a straight line: 15 km/h,
    # well within the record pace but 1.6 times the athlete's own fastest stretches.
    hits = [h for h in check(track_features(straight_line(600.0, 2500.0, speed=2.5), "run"))
            if h.code == "gap_speed"]
    assert len(hits) == 1
    # (20 minutes recorded around a 10-minute gap: too little for the best-held bound.)
    assert "1.6 times your own pace elsewhere in this run (9.0 km/h for your fastest stretches)" in hits[0].reason
    assert "the points stop for 10 min" in hits[0].reason
    # The same gap ending 1.5 km away is the jogger's own pace: a lost signal, nothing more.
    assert gap_codes(straight_line(600.0, 1500.0, speed=2.5), "run") == []
    # A rider at 25 km/h who loses the signal on a long descent and comes out at 56 km/h: downhill
    # is no evidence against the rider's own pace (the record bound still holds there).
    ride = straight_line(240.0, 3800.0, speed=7.0, sport="ride")
    descent = np.where(np.arange(ride.t.size) < 600, 1000.0, 1000.0 - 0.06 * 3800.0)
    assert gap_codes(replace(ride, ele=descent), "ride") == []
    # The same gap on the level: 2.1 times the rider's own pace.
    assert gap_codes(replace(ride, ele=np.full(ride.t.size, 1000.0)), "ride") == ["gap_speed"]
    # A rider who joins a group for ten minutes without signal: 33 km/h in its shelter, 1.3
    # times their own 25 km/h, is no reason for a rider.
    draft = straight_line(600.0, 33 / 3.6 * 600.0 + GAP_POSITION_ERROR_M, speed=7.0, sport="ride")
    assert gap_codes(replace(draft, ele=np.full(draft.t.size, 1000.0)), "ride") == []
    # A walker (1.4 m/s) may jog across a gap: below GAP_OWN_FLOOR_MPS nothing is read.
    assert gap_codes(straight_line(600.0, 1800.0 + GAP_POSITION_ERROR_M, speed=1.4), "run") == []


def test_a_gap_crossed_faster_than_the_athletes_best_for_as_long_is_flagged(real_run):
    """Within 1.3 times the runner's fastest stretches, but clearly faster than their best
    average on the move for the gap's duration anywhere else in the run: a lift, not a lost
    signal."""
    span = float(np.nanmax(real_run.t) - np.nanmin(real_run.t))
    level = replace(real_run, ele=np.full(real_run.t.size, np.nan))
    best = held_own(track_features(level, "run").series, 360.0)
    assert 2.0 < best < 5.0
    lifted = with_gap(level, 0.4 * span, 360.0, 1.4 * best * 360.0 + GAP_POSITION_ERROR_M)
    hits = [h for h in check(track_features(lifted, "run")) if h.code == "gap_speed"]
    assert len(hits) == 1 and "1.4 times your best 6 min 1 s on the move elsewhere in this run" in hits[0].reason
    # At the athlete's own best for six minutes, or a fast finish a fifth faster: what an
    # honest signal loss can look like.
    for ratio in (1.0, 1.2):
        assert gap_codes(with_gap(level, 0.4 * span, 360.0, ratio * best * 360.0 + GAP_POSITION_ERROR_M), "run") == []


def test_stops_do_not_lower_the_best_held_pace():
    """A city runner at 12 km/h who waits at lights every 400 m: their best ten minutes on the
    move is their running pace, so a gap crossed at it is no reason."""
    speed, t, north = 12 / 3.6, [0.0], [0.0]
    for _ in range(24):  # 400 m running, 40 s waiting, for 40 minutes or so
        for _ in range(int(400 / speed)):
            t.append(t[-1] + 1.0)
            north.append(north[-1] + speed)
        for _ in range(40):
            t.append(t[-1] + 1.0)
            north.append(north[-1])
    t, north = np.asarray(t), np.asarray(north)
    half = t.size // 2
    gap_s, gap_m = 600.0, speed * 600.0 * 0.97 + GAP_POSITION_ERROR_M
    t = np.concatenate([t[:half], t[half:] + gap_s])
    north = np.concatenate([north[:half], north[half:] + gap_m])
    n = t.size
    nan = np.full(n, np.nan)
    city = Track(t=1.7e9 + t, lat=46.0 + north / M_PER_DEG_LAT, lon=np.full(n, 14.5), ele=nan, acc=nan, hr=nan,
                 cad=nan, sport="run")
    series = track_features(city, "run").series
    assert held_own(series, gap_s) == pytest.approx(speed, rel=0.08)  # (the 30 s speed eases in and out of a stop)
    assert gap_codes(city, "run") == []


def test_a_descending_gap_is_not_read_against_the_athletes_own_pace():
    """A hill runner climbing at 9 km/h loses the signal on a long descent and comes out
    2.2 km on, 220 m lower, ten minutes later (12.6 km/h): downhill anyone is faster than
    elsewhere. The same gap on the level is a lift."""
    jog = straight_line(600.0, 2200.0, speed=2.5)
    n = jog.t.size
    for drop, flagged in ((220.0, False), (0.0, True)):
        ele = np.where(np.arange(n) < 600, 500.0, 500.0 - drop)
        assert gap_codes(replace(jog, ele=ele), "run") == (["gap_speed"] if flagged else []), drop


def test_the_best_held_pace_needs_twice_the_gaps_duration_on_the_move():
    short = straight_line(600.0, 2500.0, speed=2.5)  # 20 min recorded around a 10 min gap
    series = track_features(short, "run").series
    assert held_own(series, 500.0) == pytest.approx(2.5, rel=0.02)
    assert math.isnan(held_own(series, 700.0))


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
    for path, track in readable_tracks(shared_tracks):
        # Each as its own sport; a run also as a ride (a ride as a run is a cheat of its own).
        for sport in (track.sport, "ride") if track.sport in ("run", "walk") else (track.sport,):
            assert gap_codes(track, sport) == [], f"{path.parent.name}/{path.name} as {sport}"
            judged += 1
    assert judged >= 78


def drive_with_pause(real_run: Track) -> tuple[Track, tuple[float, float]]:
    """The real run with a 5-minute, 3 km drive to another trailhead hidden in a gap (36 km/h),
    and the pause the athlete pressed around it."""
    t0 = float(np.nanmin(real_run.t))
    start = 0.4 * float(np.nanmax(real_run.t) - t0)
    return with_gap(real_run, start, 300.0, 3000.0), (t0 + start + 5.0, t0 + start + 295.0)


def test_a_gap_across_an_explicit_pause_is_no_reason_to_flag(real_run):
    driven, pause = drive_with_pause(real_run)
    assert gap_codes(driven, "run") == ["gap_speed"]
    paused = track_features(driven, "run", pauses=[pause])
    assert paused.gaps == [] and check(paused) == []
    # A pause elsewhere leaves the gap, and every feature, exactly as without one.
    elsewhere = track_features(driven, "run", pauses=[(pause[0] - 900.0, pause[0] - 600.0)])
    plain = track_features(driven, "run")
    assert elsewhere.gaps == plain.gaps and len(plain.gaps) == 1
    assert np.array_equal(np.array(list(elsewhere.values.values())), np.array(list(plain.values.values())),
                          equal_nan=True)


@pytest.mark.parametrize("paused", [False, True])
def test_a_stored_drive_between_pause_and_resume_is_not_flagged_for_the_gap(session, real_run, paused):
    import uuid

    from core.accounts.users import create_user
    from core.activities.imports import record_track
    from core.activities.tables import ActivityEvent
    from core.anomaly.scoring import assess_stored

    driven, (p0, p1) = drive_with_pause(real_run)
    runner = create_user(session, f"g{uuid.uuid4().hex[:8]}_runner")
    activity = record_track(session, runner, driven, sport="run")
    if paused:
        session.add_all([ActivityEvent(activity_id=activity.id, user_id=runner.id, command="pause", status="paused", at=p0),
                         ActivityEvent(activity_id=activity.id, user_id=runner.id, command="resume", status="active", at=p1)])
        session.flush()
    result = assess_stored(session, activity, None)
    assert ("gap_speed" in result.codes.split()) is not paused
    assert result.flagged is not paused


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_a_drive_cropped_out_is_not_flagged_for_the_gap_the_crop_leaves(engine, seed):
    """The crop's removed range is stored as a pause: the gap it leaves, however far its ends
    lie apart, is scored as the pause it is."""
    import random
    import time
    import uuid

    from sqlalchemy import delete

    from core.accounts.tables import User
    from core.accounts.users import create_user
    from core.activities.imports import record_track
    from core.anomaly import cheats
    from core.anomaly.moderation import crop_activity
    from core.anomaly.scoring import score_activity
    from core.storage.engine import make_sessionmaker
    from core.synthetic.tracks import synthetic_track
    from core.tracks.geo import segment_lengths_m

    Sessions = make_sessionmaker(engine)
    tag = f"c{uuid.uuid4().hex[:8]}"
    try:
        with Sessions() as s, s.begin():
            runner = create_user(s, f"{tag}_runner")
            base = synthetic_track(random.Random(50 + seed), "run", time.time() - 3600, 45.2, 13.6, 60, 3.0)
            track = cheats.vehicle(base, random.Random(seed))
            drive = record_track(s, runner, track, visibility="public")
            assert score_activity(s, drive, None).status == "flagged"
            runner_id, drive_id = runner.id, drive.id
        fast = track.t[1:][segment_lengths_m(track.lat, track.lon) / np.diff(track.t) > 6.0]
        flag = crop_activity(Sessions, drive_id, runner_id, float(fast.min()) - 60, float(fast.max()) + 60, None)
        assert "gap_speed" not in flag.codes.split()
    finally:
        with Sessions() as s, s.begin():
            s.execute(delete(User).where(User.username.like(f"{tag}%")))


def rested_after(track: Track, t_resume: float, rested: float) -> Track:
    """``track`` with its heart rate from ``t_resume`` on starting at ``rested`` and climbing
    back to what was recorded within a couple of minutes (as after sitting in a car)."""
    hr = track.hr.copy()
    after = track.t >= t_resume
    first = hr[after & np.isfinite(hr)][0]
    hr[after] -= (first - rested) * np.exp(-(track.t[after] - t_resume) / 40.0)
    return replace(track, hr=hr)


def test_a_gap_the_heart_rested_through_while_kilometres_went_by_is_flagged(real_run):
    """Six minutes lost and 1.4 km away (13 km/h: the runner's own pace could explain it),
    but the heart rate came back at rest: nobody runs 1.4 km while their heart settles."""
    level = replace(real_run, ele=np.full(real_run.t.size, np.nan))
    span = float(np.nanmax(level.t) - np.nanmin(level.t))
    start = 0.4 * span
    lost = with_gap(level, start, 360.0, 1400.0)
    assert gap_codes(lost, "run") == []  # as recorded, a plausible signal loss
    f = track_features(lost, "run")
    gap = f.gaps[0]
    assert 120 < gap["hr"] and gap["hr1"] > gap["hr"] - 25
    lifted = rested_after(lost, gap["t1"], 70.0)
    hits = [h for h in check(track_features(lifted, "run")) if h.code == "gap_speed"]
    assert len(hits) == 1
    # (the median over the first minute back: the heart is already climbing again)
    assert f"with your heart rate at 111 bpm, down from {gap['hr']:.0f} as the points stopped" in hits[0].reason
    assert "as it does sitting in a vehicle" in hits[0].reason
    # The same heart rate after a gap crossed at a walk
    # (1.2 km in 12 minutes, 1.5 m/s), a rest on the way explains it.
    walked_gap = with_gap(level, start, 720.0, 1200.0)
    walked = rested_after(walked_gap, track_features(walked_gap, "run").gaps[0]["t1"], 90.0)
    assert gap_codes(walked, "run") == []
    # A heart rate only 20 beats down: an easier pace after the signal came back.
    eased = rested_after(lost, gap["t1"], gap["hr"] - 20.0)
    assert gap_codes(eased, "run") == []
    # A strap that reads low for 20 s as it reconnects, then the runner's own heart rate: no rest.
    relock = lost.hr.copy()
    relock[(lost.t >= gap["t1"]) & (lost.t < gap["t1"] + 20)] = 60.0
    assert gap_codes(replace(lost, hr=relock), "run") == []
    # A rider's heart settles coasting downhill or sheltered in a group: rides are not read.
    assert gap_codes(lifted, "ride") == []
    # Without a heart rate there is nothing to read.
    assert gap_codes(replace(lifted, hr=np.full(lifted.t.size, np.nan)), "run") == []

