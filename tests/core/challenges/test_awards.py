"""The badge job on SQLite and PostgreSQL: awards once scored and matched, never for a
held activity, idempotent, withdrawn (with the reason) when a moderator confirms a cheat,
when a crop takes an activity below the mark or when it is deleted, and reinstated when a
moderator releases it; late syncs move nothing already earned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.accounts.users import update_profile, user_by_name
from core.activities.imports import record_track
from core.activities.lifecycle import delete_activity
from core.activities.tables import Activity
from core.anomaly.moderation import crop_activity, decide
from core.anomaly.scoring import score_pending
from core.anomaly.tables import ActivityFlag
from core.challenges.award_reads import awards_for, new_badges, standing, withdrawals_for
from core.challenges.awards import recount_user
from core.routes.matching import match_pending
from core.routes.tables import RouteActivity
from tests.core.challenges.conftest import T0, active, add, athlete, awards, run_job
from tests.core.routes.ways import track, walk


def test_an_activity_earns_once_scored_and_matched_and_only_once(Sessions):
    name = athlete(Sessions)
    a = add(Sessions, name, 10.2, flag=None, routed=False)
    run_job(Sessions)
    assert active(Sessions, name) == set()  # not scored yet: nothing
    with Sessions() as s, s.begin():
        s.add(ActivityFlag(activity_id=a, user_id=s.get(Activity, a).user_id, sport="run", score=0.1,
                           status="clear", reasons=[], codes="", verdict={}, features={}))
    run_job(Sessions)
    assert active(Sessions, name) == set()  # not matched yet: nothing
    with Sessions() as s, s.begin():
        s.add(RouteActivity(activity_id=a, user_id=s.get(Activity, a).user_id, visibility="public", held=False,
                            points=1020))
    run_job(Sessions)
    got = awards(Sessions, name)
    assert set(got) == {"first_activity", "run_5k", "run_10k"}
    assert {x.activity_id for x in got.values()} == {a}
    # Again, and after a rescore that changes its verdict (cleared, then drawn as a sample)
    # and a re-sync that adds points: recounted each time, no second award, no change.
    assert run_job(Sessions)["awarded"] == 0
    with Sessions() as s, s.begin():
        s.get(ActivityFlag, a).status = "sampled"
    assert run_job(Sessions) == {"athletes": 1, "awarded": 0, "withdrawn": 0, "challenges": 0}
    with Sessions() as s, s.begin():
        s.get(Activity, a).point_count += 10
    assert run_job(Sessions) == {"athletes": 1, "awarded": 0, "withdrawn": 0, "challenges": 0}
    assert awards(Sessions, name)["run_10k"].id == got["run_10k"].id


def test_a_flagged_activity_earns_nothing_until_a_moderator_dismisses_it(Sessions):
    name, mod = athlete(Sessions), athlete(Sessions, role="moderator")
    a = add(Sessions, name, 42.5, flag="flagged")
    run_job(Sessions)
    assert active(Sessions, name) == set()
    with Sessions() as s, s.begin():
        decide(s, a, user_by_name(s, mod), "dismiss")
    run_job(Sessions)
    assert {"run_marathon", "run_half", "run_10k", "run_5k", "first_activity"} <= active(Sessions, name)


def test_a_confirmed_cheat_withdraws_what_it_earned_with_the_reason(Sessions):
    name, mod = athlete(Sessions), athlete(Sessions, role="moderator")
    honest = add(Sessions, name, 6.0, when=T0)
    cheat = add(Sessions, name, 25.0, when=T0 + timedelta(days=1), flag="sampled")  # cleared, but sampled
    run_job(Sessions)
    assert {"run_half", "run_10k"} <= active(Sessions, name)
    with Sessions() as s, s.begin():
        decide(s, cheat, user_by_name(s, mod), "confirm")
    done = run_job(Sessions)
    assert done["withdrawn"] >= 2
    got = awards(Sessions, name)
    assert got["run_half"].withdrawn_at is not None and got["run_10k"].withdrawn_at is not None
    assert got["run_half"].withdrawn_reason == f"a moderator confirmed activity {cheat} as irregular"
    assert got["run_half"].withdrawn_activity_id == cheat
    assert got["run_5k"].withdrawn_at is None and got["run_5k"].activity_id == honest
    with Sessions() as s:
        assert {b.code for _, b in withdrawals_for(s, cheat)} >= {"run_half", "run_10k"}
        assert awards_for(s, [cheat])[cheat] == []


def test_a_withdrawn_badge_comes_back_when_earned_again(Sessions):
    name, mod = athlete(Sessions), athlete(Sessions, role="moderator")
    a = add(Sessions, name, 11.0, flag="sampled")
    run_job(Sessions)
    with Sessions() as s, s.begin():
        decide(s, a, user_by_name(s, mod), "confirm")
    run_job(Sessions)
    assert "run_10k" not in active(Sessions, name)
    b = add(Sessions, name, 10.5, when=T0 + timedelta(days=3))
    run_job(Sessions)
    got = awards(Sessions, name)
    assert got["run_10k"].withdrawn_at is None and got["run_10k"].activity_id == b
    assert got["run_10k"].withdrawn_reason is None


def test_a_late_sync_of_an_older_activity_takes_the_badge_without_awarding_it_again(Sessions):
    """The earning activity is the first done: a late offline sync of an older 10 km run
    takes the badge over (same award, its date the older run's), nothing is awarded twice."""
    name = athlete(Sessions)
    newer = add(Sessions, name, 10.0, when=T0 + timedelta(days=5))
    run_job(Sessions)
    first = awards(Sessions, name)["run_10k"]
    older = add(Sessions, name, 10.0, when=T0)
    done = run_job(Sessions)
    assert done["awarded"] == 0 and done["withdrawn"] == 0
    got = awards(Sessions, name)["run_10k"]
    assert (got.id, got.activity_id, got.earned_at) == (first.id, older, T0) and newer != older


def test_a_crop_below_the_mark_moves_the_badge_to_the_next_activity_that_reaches_it(Sessions):
    name = athlete(Sessions)
    a = add(Sessions, name, 10.5, when=T0)
    b = add(Sessions, name, 12.0, when=T0 + timedelta(days=2))
    run_job(Sessions)
    assert awards(Sessions, name)["run_10k"].activity_id == a
    with Sessions() as s, s.begin():
        s.get(Activity, a).distance_m = 9000.0  # what a crop leaves
    run_job(Sessions)
    got = awards(Sessions, name)["run_10k"]
    assert got.activity_id == b and got.withdrawn_at is None
    with Sessions() as s:
        assert [x.code for x in awards_for(s, [a])[a]] == ["first_activity", "run_5k"]


def test_each_withdrawn_badge_gets_its_own_reason(Sessions):
    """A ride deleted and a run confirmed as a cheat in the same round: the ride's badges say
    it was deleted, the run's that it was confirmed; a flag confirmed later firms up the
    reason given while it was only held."""
    name, mod = athlete(Sessions), athlete(Sessions, role="moderator")
    ride = add(Sessions, name, 120.0, when=T0, sport="ride")
    run = add(Sessions, name, 11.0, when=T0 + timedelta(days=1), flag="sampled")
    run_job(Sessions)
    with Sessions() as s, s.begin():
        delete_activity(s, s.get(Activity, ride))
        decide(s, run, user_by_name(s, mod), "confirm")
    run_job(Sessions)
    got = awards(Sessions, name)
    assert got["ride_100k"].withdrawn_reason == f"activity {ride} was deleted"
    assert got["run_10k"].withdrawn_reason == f"a moderator confirmed activity {run} as irregular"
    # Held first, confirmed after: the reason follows.
    other = athlete(Sessions)
    held = add(Sessions, other, 10.0, when=T0)
    run_job(Sessions)
    with Sessions() as s, s.begin():
        s.get(Activity, held).held = True
        s.get(ActivityFlag, held).status = "flagged"
    run_job(Sessions)
    assert awards(Sessions, other)["run_10k"].withdrawn_reason == f"activity {held} is held for review"
    with Sessions() as s, s.begin():
        s.get(ActivityFlag, held).status = "confirmed"
    run_job(Sessions)
    assert awards(Sessions, other)["run_10k"].withdrawn_reason == f"a moderator confirmed activity {held} as irregular"
    # Held, cropped short of the mark while held, then released: no longer "held".
    third = athlete(Sessions)
    cropped = add(Sessions, third, 12.0, when=T0)
    run_job(Sessions)
    for status, held_now, km in (("crop_requested", True, None), ("cropped", True, 9.0), ("dismissed", False, None)):
        with Sessions() as s, s.begin():
            s.get(ActivityFlag, cropped).status, s.get(Activity, cropped).held = status, held_now
            if km is not None:
                s.get(Activity, cropped).distance_m = s.get(Activity, cropped).shown_distance_m = km * 1000
        run_job(Sessions)
        reason = awards(Sessions, third)["run_10k"].withdrawn_reason
        assert reason == (f"after its review, activity {cropped} no longer earns it" if not held_now
                          else f"activity {cropped} is held for review")
    assert awards(Sessions, third)["run_5k"].withdrawn_at is None  # 9 km still earns it, released


def test_a_device_clock_in_year_one_counts_for_nothing_and_stops_nothing(Sessions):
    """An activity dated 0001 in an athlete's time zone west of UTC (a date Python cannot
    shift) is left out; the job still converges and counts everyone else."""
    from datetime import datetime as dt

    name, other = athlete(Sessions), athlete(Sessions)
    with Sessions() as s, s.begin():
        update_profile(s, user_by_name(s, name), time_zone="America/New_York")
    add(Sessions, name, 10.0, when=dt(1, 1, 1, 3, tzinfo=UTC))
    add(Sessions, name, 5.0, when=dt(2099, 1, 1, tzinfo=UTC))  # and one from the future
    add(Sessions, other, 5.0)
    run_job(Sessions)  # fails if any athlete's recount failed
    assert active(Sessions, name) == set() and "run_5k" in active(Sessions, other)
    with Sessions() as s:
        assert standing(s, user_by_name(s, name)).earned == []


def test_a_long_history_is_written_a_chunk_per_transaction(Sessions, monkeypatch):
    from core.challenges import awards as module
    from core.challenges.tables import BadgeActivity
    from core.storage.engine import WRITE_LOCKS

    monkeypatch.setattr(module, "SNAPSHOT_CHUNK", 5)
    name = athlete(Sessions)
    ids = [add(Sessions, name, 3.0, when=T0 + timedelta(hours=k)) for k in range(12)]
    WRITE_LOCKS.snapshot(reset=True)
    run_job(Sessions)
    assert WRITE_LOCKS.snapshot(reset=True)["badges"]["count"] == 3  # 5 + 5 + 2
    with Sessions() as s:
        seen = s.scalars(select(BadgeActivity.activity_id).where(BadgeActivity.activity_id.in_(ids))).all()
        assert sorted(seen) == ids


def test_a_streak_and_a_monthly_total_are_earned_by_the_activity_that_completes_them(Sessions):
    name = athlete(Sessions)
    ids = [add(Sessions, name, 13.0, when=T0 + timedelta(weeks=k)) for k in range(4)]
    run_job(Sessions)
    got = awards(Sessions, name)
    assert got["streak_4w"].activity_id == ids[3]
    assert got["month_50k"].activity_id == ids[3]  # 4 x 13 km in November


def test_a_deleted_activity_takes_its_badges_and_totals_with_it(Sessions):
    name = athlete(Sessions)
    keep = add(Sessions, name, 30.0, when=T0)
    gone = add(Sessions, name, 30.0, when=T0 + timedelta(days=1))
    run_job(Sessions)
    assert awards(Sessions, name)["month_50k"].activity_id == gone
    with Sessions() as s, s.begin():
        delete_activity(s, s.get(Activity, gone))
    run_job(Sessions)
    got = awards(Sessions, name)
    assert got["month_50k"].withdrawn_at is not None
    assert got["month_50k"].withdrawn_reason == f"activity {gone} was deleted"
    assert got["run_half"].withdrawn_at is None and got["run_half"].activity_id == keep


def test_a_new_time_zone_recounts_the_calendar_badges(Sessions):
    name = athlete(Sessions)
    add(Sessions, name, 5.0, when=datetime(2026, 11, 3, 11, 30, tzinfo=UTC))  # 06:30 in New York
    run_job(Sessions)
    assert "early_bird" not in active(Sessions, name)
    with Sessions() as s, s.begin():
        user = user_by_name(s, name)
        update_profile(s, user, time_zone="America/New_York")  # 06:30 there
        recount_user(s, user.id)
    run_job(Sessions)
    assert "early_bird" in active(Sessions, name)
    with Sessions() as s, s.begin():
        user = user_by_name(s, name)
        update_profile(s, user, time_zone="Asia/Tokyo")  # 20:30 there
        recount_user(s, user.id)
    run_job(Sessions)
    got = awards(Sessions, name)["early_bird"]
    assert got.withdrawn_reason == "your time zone changed, and with it your weeks, months and hours"


def test_the_completion_cue_names_the_badges_the_activity_earns_if_it_stands(Sessions):
    name = athlete(Sessions)
    add(Sessions, name, 6.0, when=T0)
    run_job(Sessions)
    b = add(Sessions, name, 10.1, when=T0 + timedelta(days=1), flag=None, routed=False)
    with Sessions() as s:
        assert [x.code for x in new_badges(s, user_by_name(s, name).id, b)] == ["run_10k"]
        st = standing(s, user_by_name(s, name), now=T0 + timedelta(days=2))
        assert {b.code for _, b in st.earned} == {"first_activity", "run_5k"}
        assert st.streak == 1
        assert st.next[0][0].code in {"run_10k", "month_50k", "streak_4w"}


def test_a_crop_below_the_mark_withdraws_the_badge(Sessions):
    """End to end: a recorded 5.4 km run, scored and matched for real, earns its 5 km; the
    athlete crops 600 m out of it and the badge goes, with the crop as the reason."""
    name = athlete(Sessions)
    from tests.core.routes.ways import LOOP

    tr = track(walk(LOOP, 3.0, 5.0, 0.0, laps=0.9), 51.5, -0.12, 5.0, noise_m=1.0, seed=3, t0=T0.timestamp())
    with Sessions() as s, s.begin():
        user = user_by_name(s, name)
        a = record_track(s, user, tr, sport="run", visibility="public", source="demo").id
        uid = user.id
    while score_pending(Sessions, None, 1.0, batch=50):
        pass
    while match_pending(Sessions, limit=50):
        pass
    run_job(Sessions)
    with Sessions() as s:
        distance = s.get(Activity, a).distance_m
        held = s.get(Activity, a).held
    assert 5000 <= distance < 5700 and not held
    assert awards(Sessions, name)["run_5k"].activity_id == a
    t0 = T0.timestamp() + 600
    crop_activity(Sessions, a, uid, t0, t0 + 240, None, 1.0)
    with Sessions() as s:
        assert s.get(Activity, a).distance_m < 5000
    run_job(Sessions)
    got = awards(Sessions, name)["run_5k"]
    assert got.withdrawn_at is not None and got.withdrawn_reason == f"activity {a} was cropped"


def test_the_completion_cue_names_the_badge_for_the_challenge_the_activity_completes(Sessions):
    """The second activity of a two-session week completes the challenge on the device: its
    cue names "Challenge accepted" too, though the job records the completion only once the
    activity is scored."""
    from core.challenges.badges import time_zone
    from core.challenges.personal import current_week, week_bounds
    from core.challenges.tables import Challenge

    name = athlete(Sessions)
    week = current_week(T0, time_zone({}))
    start, end = week_bounds(week, time_zone({}))
    add(Sessions, name, 3.0, when=start + timedelta(hours=10))
    run_job(Sessions)
    with Sessions() as s, s.begin():
        uid = user_by_name(s, name).id
        s.add(Challenge(user_id=uid, week=week, kind="sessions", sport=None, target=2.0, usual=1.0, level=1,
                        starts_at=start, deadline=end, progress=1.0, status="active"))
    second = add(Sessions, name, 3.0, when=start + timedelta(days=1, hours=10), flag=None, routed=False)
    with Sessions() as s:
        assert [x.code for x in new_badges(s, uid, second)] == ["challenge_1"]
