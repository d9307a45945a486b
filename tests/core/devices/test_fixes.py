"""Phone apps' fixes become activities: checks, assignment, duplicates, late and shuffled
flushes of a real recording, completion after the idle time, the sport, late fixes after
completion, hints stored."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from core.activities.tables import Activity, ActivityEvent
from core.anomaly import failures
from core.devices.fixes import SEQ_BASE, Fix, FixError, check_fix, device_sport, store_fixes
from core.devices.hints import stored_hints
from core.devices.tables import DeviceTrack, FixHint
from core.jobs.devices import complete_quiet, recompute_late
from core.storage.base import utcnow
from core.storage.points import count_points
from core.tracks.cleaning import clean_track
from core.tracks.formats import load_track
from core.tracks.stats import summarise
from tests.core.devices.conftest import failing_summaries, fixes_of, late_activities

IDLE = 600.0
T0 = 1_750_000_000.0
NOW = T0 + 86_400.0
RUN_FILE = "sportstracker/Garmin_Forerunner_910XT-Running.fit"  # 9.8 km, 743 fixes
RIDE_FILE = "python-fitparse/2015-10-13-08-43-15.fit"  # 11.5 km, 221 fixes


def walk(t0: float, n: int, step_s: float = 5.0, lat0: float = 45.0, **extra) -> list[Fix]:
    return [Fix(t0 + i * step_s, lat0 + i * 1e-4, 7.0, **extra) for i in range(n)]


def status_of(Sessions, activity_id: int) -> str:
    with Sessions() as s:
        return s.get(Activity, activity_id).status


# Checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fix, words", [
    (Fix(T0, 91.0, 7.0), "latitude"),
    (Fix(T0, 45.0, -181.0), "longitude"),
    (Fix(math.nan, 45.0, 7.0), "finite"),
    (Fix(T0, math.inf, 7.0), "finite"),
    (Fix(NOW + 301, 45.0, 7.0), "future"),
    (Fix(900_000_000.0, 45.0, 7.0), "2000"),
    (Fix(T0, 45.0, 7.0, acc=-1.0), "accuracy"),
    (Fix(T0, 45.0, 7.0, ele=10_001.0), "elevation"),
    (Fix(T0, 45.0, 7.0, speed_mps=-2.0), "speed"),
    (Fix(T0, 45.0, 7.0, speed_mps=351.0), "speed"),
])
def test_impossible_fixes_are_refused_in_plain_words(fix, words):
    with pytest.raises(FixError) as err:
        check_fix(fix, now=NOW)
    assert err.value.code in ("invalid_point", "invalid_value")
    assert words in err.value.message


def test_unknown_values_are_tidied_not_refused():
    fix = check_fix(Fix(T0, 45.0, 7.0, speed_mps=-1, battery=104.0, bearing=-1.0, motion="  IN_VEHICLE  " + "x" * 30),
                    now=NOW)
    assert fix.speed_mps is None and fix.battery == 100.0 and fix.bearing is None
    assert fix.motion == ("in_vehicle  " + "x" * 30)[:24]
    assert check_fix(Fix(T0, 45.0, 7.0, battery=-3, motion=" "), now=NOW).battery == 0.0
    with pytest.raises(FixError) as err:
        check_fix(Fix(T0, "45", 7.0), now=NOW)
    assert err.value.code == "invalid_value"
    with pytest.raises(FixError):
        check_fix(Fix(T0, 45.0, 7.0, is_moving="yes"), now=NOW)


# Assignment and duplicates ------------------------------------------------------------------


def test_fixes_start_one_activity_and_a_pause_longer_than_the_idle_time_starts_another(Sessions, make_device):
    device = make_device("run")
    first = store_fixes(Sessions, [(device, f) for f in walk(T0, 30)], now=T0 + 200, idle_s=IDLE)
    assert len({r.activity_id for r in first}) == 1
    assert [r.created for r in first] == [True] + [False] * 29
    assert all(r.new and r.status == "active" and r.sport == "run" for r in first)
    assert first[0].seq == SEQ_BASE and first[1].seq == SEQ_BASE + 50  # deciseconds from the anchor
    # Within the idle time of the last fix: the same activity; beyond it: a new one.
    later = store_fixes(Sessions, [(device, f) for f in walk(T0 + 145 + 500, 3) + walk(T0 + 5000, 3)],
                        now=T0 + 5100, idle_s=IDLE)
    assert {r.activity_id for r in later[:3]} == {first[0].activity_id}
    assert later[3].created and later[3].activity_id != first[0].activity_id
    with Sessions() as s:
        activity = s.get(Activity, first[0].activity_id)
        assert activity.status == "active" and activity.source == "device" and activity.title == "Run"
        assert count_points(s, activity.id) == 33  # point_count is the summary's, set at completion
        track = s.get(DeviceTrack, activity.id)
        assert (track.first_t, track.last_t, track.anchor_t) == (T0, T0 + 145 + 510, T0)
        assert device_sport(s, device.token_id) == "run"


def test_a_fix_sent_twice_is_stored_once(Sessions, make_device):
    device = make_device("ride")
    fixes = walk(T0, 10)
    first = store_fixes(Sessions, [(device, f) for f in fixes], now=T0 + 60, idle_s=IDLE)
    again = store_fixes(Sessions, [(device, f) for f in fixes[3:] + fixes[:2] + fixes[:1]], now=T0 + 70, idle_s=IDLE)
    assert [r.new for r in again] == [False] * 10
    assert [r.seq for r in again[:7]] == [r.seq for r in first[3:]]
    # Twice in one batch: the first copy is new, the second not.
    twice = store_fixes(Sessions, [(device, Fix(T0 + 100, 45.1, 7.0))] * 2, now=T0 + 110, idle_s=IDLE)
    assert [r.new for r in twice] == [True, False]
    with Sessions() as s:
        assert count_points(s, first[0].activity_id) == 11
        assert s.get(DeviceTrack, first[0].activity_id).heard_at == T0 + 110


def test_devices_of_one_batch_are_kept_apart(Sessions, make_device):
    a, b = make_device("run"), make_device(None)
    out = store_fixes(Sessions, [(a, f) for f in walk(T0, 3)] + [(b, f) for f in walk(T0, 3)], now=T0 + 60, idle_s=IDLE)
    assert out[0].activity_id != out[3].activity_id
    assert out[3].sport == "run"  # provisional until completion
    with Sessions() as s:
        assert s.get(DeviceTrack, out[3].activity_id).sport_inferred
        assert not s.get(DeviceTrack, out[0].activity_id).sport_inferred


# A real recording, flushed late, shuffled and twice ------------------------------------------


def test_a_shuffled_late_flush_lands_in_the_right_activities(Sessions, make_device, shared_tracks):
    """Two outings of one real run (the second two hours later), their fixes shuffled and sent
    in batches, some twice: two activities, each with the distance the stats command computes."""
    track = load_track(shared_tracks / RUN_FILE)
    expected = summarise(clean_track(track), points=len(track)).distance_m  # python -m core stats
    device = make_device("run")
    span = float(track.t[-1] - track.t[0])
    outings = [fixes_of(track), fixes_of(track, shift_s=span + 7200.0)]
    sent = outings[0] + outings[1]
    sent += random.Random(3).sample(sent, 200)  # sent twice
    random.Random(4).shuffle(sent)
    results = []
    for k in range(0, len(sent), 100):
        results += store_fixes(Sessions, [(device, f) for f in sent[k:k + 100]], now=NOW, idle_s=IDLE)
    ids = sorted({r.activity_id for r in results})
    assert len(ids) == 2
    assert sum(r.new for r in results) == len(outings[0]) + len(outings[1])
    complete_quiet(Sessions, IDLE, now=NOW + IDLE + 1)
    with Sessions() as s:
        for activity_id, outing in zip(ids, outings, strict=True):
            activity = s.get(Activity, activity_id)
            assert activity.status == "completed" and activity.sport == "run"
            assert activity.point_count == len(outing)
            assert activity.distance_m == pytest.approx(expected, rel=0.005)
            assert activity.start_time.timestamp() == pytest.approx(outing[0].t, abs=1)


def test_late_fixes_after_completion_are_stored_and_the_activity_recomputed(Sessions, make_device, shared_tracks):
    track = load_track(shared_tracks / RUN_FILE)
    expected = summarise(clean_track(track), points=len(track)).distance_m
    device = make_device("run")
    fixes = fixes_of(track)
    cut = int(len(fixes) * 0.8)
    kept = fixes[:cut]
    late = fixes[cut:]
    early = random.Random(5).sample(kept, 60)  # a gap in the middle, flushed late
    first = [f for f in kept if f not in early]
    store_fixes(Sessions, [(device, f) for f in first], now=NOW, idle_s=IDLE)
    complete_quiet(Sessions, IDLE, now=NOW + IDLE + 1)
    out = store_fixes(Sessions, [(device, f) for f in late + early], now=NOW + 2 * IDLE, idle_s=IDLE)
    assert len({r.activity_id for r in out}) == 1 and all(r.new and r.status == "completed" for r in out)
    activity_id = out[0].activity_id
    with Sessions() as s:
        assert s.get(DeviceTrack, activity_id).recompute
        assert s.get(Activity, activity_id).distance_m < expected * 0.9
        # The stop and completion moved past the newest fix, so the summary counts it.
        stops = s.scalars(select(ActivityEvent.at).where(ActivityEvent.activity_id == activity_id,
                                                         ActivityEvent.command == "stop")).all()
        assert stops == [fixes[-1].t + 1.0]
    # Not completed again: it is completed; recomputed instead.
    complete_quiet(Sessions, IDLE, now=NOW + 4 * IDLE)
    assert status_of(Sessions, activity_id) == "completed"
    assert recompute_late(Sessions, None, 0.7)["recomputed"] >= 1
    with Sessions() as s:
        activity = s.get(Activity, activity_id)
        assert activity.status == "completed" and activity.point_count == len(fixes)
        assert activity.distance_m == pytest.approx(expected, rel=0.005)
        assert not s.get(DeviceTrack, activity_id).recompute
    recompute_late(Sessions, None, 0.7)
    with Sessions() as s:
        assert s.get(Activity, activity_id).distance_m == pytest.approx(expected, rel=0.005)


def test_an_activity_whose_recomputation_fails_waits_and_the_others_are_recomputed(Sessions, make_device,
                                                                                   monkeypatch):
    """One activity's error (its track cannot be summarised) neither stops the round nor the
    others' recomputation; it is written down and tried again after a wait, more each time,
    and recomputed once mended."""
    import core.jobs.devices as devices

    bad, good = late_activities(Sessions, make_device, 2, t0=T0, idle=IDLE)
    broken = failing_summaries(monkeypatch, {bad})
    assert recompute_late(Sessions, None, 0.7)["recomputed"] == 1
    with Sessions() as s:
        row = s.get(DeviceTrack, bad)
        assert row.recompute and not s.get(DeviceTrack, good).recompute
        assert row.recompute_attempts == 1 and row.recompute_error == "ValueError: no track to summarise"
        wait = (row.recompute_retry_at - utcnow()).total_seconds()
        assert failures.RETRY_AFTER_S[0] - 60 < wait <= failures.RETRY_AFTER_S[0]
        assert s.get(Activity, good).point_count == 60
    # Not due: not tried, not counted again (by this round, or by the stream's direct call).
    assert recompute_late(Sessions, None, 0.7)["recomputed"] == 0
    assert devices.recompute_one(Sessions, bad, None, 0.7) == 0
    with Sessions() as s:
        assert s.get(DeviceTrack, bad).recompute_attempts == 1
    # Due again, still failing: the next wait is longer.
    later = utcnow() + timedelta(seconds=failures.RETRY_AFTER_S[0] + 1)
    assert recompute_late(Sessions, None, 0.7, now=later)["recomputed"] == 0
    with Sessions() as s:
        row = s.get(DeviceTrack, bad)
        assert row.recompute_attempts == 2
        assert (row.recompute_retry_at - utcnow()).total_seconds() > failures.RETRY_AFTER_S[1] - 60
    # Mended, and due: recomputed, and the failure forgotten.
    broken.clear()
    later = utcnow() + timedelta(seconds=failures.RETRY_AFTER_S[1] + 1)
    assert recompute_late(Sessions, None, 0.7, now=later)["recomputed"] == 1
    with Sessions() as s:
        row = s.get(DeviceTrack, bad)
        assert not row.recompute and s.get(Activity, bad).point_count == 60
        assert (row.recompute_attempts, row.recompute_error, row.recompute_retry_at) == (0, None, None)


def test_a_recomputation_that_keeps_failing_is_given_up_and_counted(Sessions, make_device, monkeypatch):
    """After ``failures.MAX_ATTEMPTS`` its summary stays as it was; no round tries it again,
    and the worker's metric counts it. A round in which every one of several failed and
    none was recomputed (a fault of the service) charges none of them."""
    import core.jobs.devices as devices

    phones = []
    ids = late_activities(Sessions, make_device, failures.Round.SYSTEMIC + 1, phones, t0=T0, idle=IDLE)
    bad = ids[0]
    broken = failing_summaries(monkeypatch, set(ids[:failures.Round.SYSTEMIC]))
    # Alone in the round, every one failing: nobody charged.
    assert recompute_late(Sessions, None, 0.7, batch=failures.Round.SYSTEMIC)["recomputed"] == 0
    with Sessions() as s:
        assert [s.get(DeviceTrack, a).recompute_attempts for a in broken] == [0] * len(broken)
    broken.intersection_update({bad})
    now = utcnow()
    for attempt in range(1, failures.MAX_ATTEMPTS + 1):
        recompute_late(Sessions, None, 0.7, now=now)
        with Sessions() as s:
            row = s.get(DeviceTrack, bad)
            assert row.recompute_attempts == attempt
            assert (row.recompute_retry_at is None) == (attempt == failures.MAX_ATTEMPTS)
        now = utcnow() + timedelta(seconds=failures.RETRY_AFTER_S[min(attempt, len(failures.RETRY_AFTER_S)) - 1] + 1)
    with Sessions() as s:
        assert devices.count_given_up(s) == 1
        assert s.get(DeviceTrack, bad).recompute and s.get(Activity, bad).point_count < 60  # kept as it was
    assert bad not in devices.late_ids(Sessions, now=utcnow() + timedelta(days=30))
    assert devices.recompute_one(Sessions, bad, None, 0.7) == 0
    # Another late fix changes its track: it starts afresh, and, mended, is recomputed.
    broken.clear()
    store_fixes(Sessions, [(phones[0], Fix(T0 + 60 * 5.0, 45.0 + 60 * 1e-4, 7.0))], now=NOW + 3 * IDLE, idle_s=IDLE)
    assert recompute_late(Sessions, None, 0.7)["recomputed"] == 1
    with Sessions() as s:
        row = s.get(DeviceTrack, bad)
        assert not row.recompute and row.recompute_attempts == 0 and s.get(Activity, bad).point_count == 61
    with Sessions() as s:
        assert all(not s.get(DeviceTrack, a).recompute for a in ids[1:])


def test_a_moderator_has_a_given_up_recomputation_tried_once_more(Sessions, make_device, monkeypatch):
    """A given-up recomputation is listed with its error; a moderator's request has it tried
    at the next round, once: failing still, it is given up again, and mended, recomputed."""
    import core.jobs.devices as devices

    ids = late_activities(Sessions, make_device, 2, t0=T0, idle=IDLE)
    bad = ids[0]
    broken = failing_summaries(monkeypatch, {bad})
    now = utcnow()
    for _ in range(failures.MAX_ATTEMPTS):
        recompute_late(Sessions, None, 0.7, now=now)
        now += timedelta(days=1)
    with Sessions() as s:
        [(row, activity, _)] = devices.given_up(s)
        assert activity.id == bad and row.recompute_attempts == failures.MAX_ATTEMPTS
        assert "no track to summarise" in row.recompute_error
    with Sessions() as s, s.begin():
        assert not devices.recompute_again(s, ids[1])  # recomputed: nothing to try again
        assert devices.recompute_again(s, bad)
    with Sessions() as s, s.begin():
        assert not devices.recompute_again(s, bad)  # asked already
        assert devices.given_up(s) == [] and devices.count_given_up(s) == 0
    assert recompute_late(Sessions, None, 0.7, now=now)["recomputed"] == 0  # still broken: tried once
    with Sessions() as s:
        assert devices.count_given_up(s) == 1
    broken.clear()
    with Sessions() as s, s.begin():
        assert devices.recompute_again(s, bad)
    assert recompute_late(Sessions, None, 0.7, now=now)["recomputed"] == 1
    with Sessions() as s:
        row = s.get(DeviceTrack, bad)
        assert not row.recompute and row.recompute_attempts == 0 and devices.given_up(s) == []


def test_activities_waiting_after_a_failed_recomputation_do_not_fill_the_batch(Sessions, make_device, monkeypatch):

    ids = late_activities(Sessions, make_device, 3, t0=T0, idle=IDLE)
    failing_summaries(monkeypatch, set(ids[:2]))
    assert recompute_late(Sessions, None, 0.7, batch=2)["recomputed"] == 0  # the two first, failing
    assert recompute_late(Sessions, None, 0.7, batch=2)["recomputed"] == 1  # the third, not held up
    with Sessions() as s:
        assert not s.get(DeviceTrack, ids[2]).recompute


# Completion -------------------------------------------------------------------------------


def test_an_activity_completes_only_after_its_device_went_quiet(Sessions, make_device):
    device = make_device("run")
    out = store_fixes(Sessions, [(device, f) for f in walk(T0, 40)], now=T0 + 200, idle_s=IDLE)
    activity_id = out[0].activity_id
    last_t = T0 + 39 * 5
    complete_quiet(Sessions, IDLE, now=last_t + IDLE - 1)
    assert status_of(Sessions, activity_id) == "active"
    # An old fix flushed late counts as hearing from the device: the wall clock of its arrival.
    store_fixes(Sessions, [(device, Fix(T0 + 2.5, 45.0, 7.0))], now=last_t + IDLE + 100, idle_s=IDLE)
    complete_quiet(Sessions, IDLE, now=last_t + IDLE + 200)
    assert status_of(Sessions, activity_id) == "active"
    complete_quiet(Sessions, IDLE, now=last_t + 2 * IDLE + 101)
    assert status_of(Sessions, activity_id) == "completed"
    with Sessions() as s:
        activity = s.get(Activity, activity_id)
        assert activity.status == "completed" and activity.point_count == 41
        assert activity.completed_at.timestamp() == pytest.approx(last_t + 1)
        assert activity.distance_m > 400
        commands = s.scalars(select(ActivityEvent.command).where(ActivityEvent.activity_id == activity_id)
                             .order_by(ActivityEvent.id)).all()
        assert commands == ["start", "stop", "complete"]


def test_a_discarded_activity_takes_no_more_fixes(Sessions, make_device):
    from core.activities.lifecycle import change_status

    device = make_device("run")
    out = store_fixes(Sessions, [(device, f) for f in walk(T0, 5)], now=T0 + 60, idle_s=IDLE)
    with Sessions() as s, s.begin():
        change_status(s, s.get(Activity, out[0].activity_id), "discard", at=T0 + 70)
    again = store_fixes(Sessions, [(device, f) for f in walk(T0 + 30, 3)], now=T0 + 80, idle_s=IDLE)
    assert [(r.activity_id, r.status, r.new) for r in again] == [(out[0].activity_id, "discarded", False)] * 3


# Sport ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, sport", [(RIDE_FILE, "ride"), (RUN_FILE, "run")])
def test_a_token_without_a_sport_gets_it_from_the_speeds(Sessions, make_device, shared_tracks, name, sport):
    track = load_track(shared_tracks / name)
    device = make_device(None)
    out = store_fixes(Sessions, [(device, f) for f in fixes_of(track)], now=NOW, idle_s=IDLE)
    assert out[0].sport == "run"
    complete_quiet(Sessions, IDLE, now=NOW + IDLE + 1)
    with Sessions() as s:
        activity = s.get(Activity, out[0].activity_id)
        assert activity.sport == sport and activity.title == ("Ride" if sport == "ride" else "Run")
        if sport == "ride":  # as an import of the file as a ride would have it
            expected = summarise(clean_track(track), points=len(track)).distance_m
            assert activity.distance_m == pytest.approx(expected, rel=0.005)


def test_a_token_sport_is_kept_whatever_the_speeds(Sessions, make_device, shared_tracks):
    track = load_track(shared_tracks / RIDE_FILE)
    device = make_device("run")
    out = store_fixes(Sessions, [(device, f) for f in fixes_of(track)], now=NOW, idle_s=IDLE)
    complete_quiet(Sessions, IDLE, now=NOW + IDLE + 1)
    with Sessions() as s:
        assert s.get(Activity, out[0].activity_id).sport == "run"


# Hints ------------------------------------------------------------------------------------


def test_hints_are_stored_only_for_fixes_that_carry_them(Sessions, make_device):
    device = make_device(None)
    fixes = walk(T0, 6)
    fixes[1] = Fix(fixes[1].t, fixes[1].lat, fixes[1].lon, is_moving=True, motion="on_bicycle")
    fixes[2] = Fix(fixes[2].t, fixes[2].lat, fixes[2].lon, motion="in_vehicle", speed_mps=20.0, battery=50.0)
    fixes[3] = Fix(fixes[3].t, fixes[3].lat, fixes[3].lon, is_moving=False, speed_mps=12.0)
    out = store_fixes(Sessions, [(device, f) for f in fixes] + [(device, fixes[2])], now=T0 + 60, idle_s=IDLE)
    with Sessions() as s:
        assert s.scalar(select(func.count()).select_from(FixHint).where(FixHint.activity_id == out[0].activity_id)) == 3
        hints = stored_hints(s, out[0].activity_id)
        assert list(hints.t) == [fixes[1].t, fixes[2].t, fixes[3].t]
        assert hints.motion == ["on_bicycle", "in_vehicle", None]
        assert list(hints.vehicle) == [False, True, True]  # in a vehicle; still while at 12 m/s
        assert hints.vehicle_share(T0, T0 + 100) == (pytest.approx(2 / 3), 3)
        assert stored_hints(s, out[0].activity_id + 10_000) is None


# The stored end lags; starts per transaction; a crop and a resend ------------------------

def test_a_fix_within_the_idle_time_of_the_newest_fix_joins_though_the_stored_end_lags(Sessions, make_device):
    device = make_device("run")
    first = [store_fixes(Sessions, [(device, Fix(T0 + k, 45.0 + k * 1e-5, 7.0))], now=T0 + k, idle_s=IDLE)[0]
             for k in range(60)]  # one a second: the stored end is written back only now and then
    later = store_fixes(Sessions, [(device, Fix(T0 + 59 + 590, 45.01, 7.0))], now=T0 + 650, idle_s=IDLE)[0]
    assert {r.activity_id for r in first} == {later.activity_id} and not later.created


def test_at_most_max_starts_activities_per_write_and_the_rest_left_out(Sessions, make_device):
    device = make_device("run")
    fixes = [(device, Fix(T0 + 700 * k, 45.0, 7.0 + k * 1e-3)) for k in range(12)]  # each starts one
    results = store_fixes(Sessions, fixes, now=NOW, idle_s=IDLE, max_starts=5)
    assert sum(r is not None for r in results) == 5 and all(r is None for r in results[5:])
    rest = store_fixes(Sessions, fixes[5:], now=NOW, idle_s=IDLE, max_starts=5)
    assert sum(r is not None for r in rest) == 5
    assert all(r.created for r in results[:5] + rest[:5])


def test_a_point_sent_again_after_a_crop_keeps_its_hints(Sessions, make_device):
    from core.storage.points import delete_range

    device = make_device("run")
    fixes = [(device, f) for f in walk(T0, 20, step_s=1.0, speed_mps=3.0)]
    results = store_fixes(Sessions, fixes, now=NOW, idle_s=IDLE)
    with Sessions() as s, s.begin():
        delete_range(s, results[0].activity_id, T0 + 5, T0 + 8)
    again = store_fixes(Sessions, fixes[4:10], now=NOW, idle_s=IDLE)
    assert [r.new for r in again] == [False, True, True, True, True, False]
