"""Personal weekly challenges: built from the athlete's usual week, gentler for a lapsing
athlete, weeks in the athlete's time zone, progress from what counts (late syncs in,
confirmed cheats out), declining, and the end of a week; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from core.accounts.users import update_profile, user_by_name
from core.anomaly.moderation import decide
from core.challenges.assign import ChallengeError, assign_due, challenges_of, decline, end_weeks
from core.challenges.badges import Entry
from core.challenges.personal import build, describe, measure, usual_week, week_bounds
from core.challenges.tables import BadgeAward, Challenge
from tests.core.challenges.conftest import active, add, athlete, run_job

LONDON = ZoneInfo("Europe/London")
UTC_TZ = ZoneInfo("UTC")
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)  # ISO week 2026-W49


def entry(i, when, km=5.0, sport="run", climb=0.0):
    return Entry(id=i, sport=sport, start=when, distance_m=km * 1000, climb_m=climb)


def three_a_week(weeks=8, km=8.0, climb=0.0, idle=0):
    """Three runs a week over the ``weeks`` weeks before MONDAY, but none in the last ``idle``."""
    return [entry(w * 10 + k, MONDAY - timedelta(weeks=weeks - w) + timedelta(days=2 * k, hours=7), km=km, climb=climb)
            for w in range(weeks - idle) for k in range(3)]


def test_three_runs_a_week_are_challenged_to_four_and_a_little_further():
    u = usual_week(three_a_week(), UTC_TZ, MONDAY.date())
    assert (u.sessions, u.distance_m, u.sport, u.lapsed) == (3.0, 24000.0, "run", False)
    got = {c["kind"]: c for c in build(u)}
    assert got["sessions"]["target"] == 4.0
    assert got["distance"]["target"] == 26500.0  # 24 km + 10%, rounded up to 0.5 km
    assert "climb" not in got  # flat: no climbing challenge


def test_a_lapsing_athlete_gets_a_gentler_challenge():
    history = three_a_week(idle=2)  # nothing in the last two weeks
    u = usual_week(history, UTC_TZ, MONDAY.date())
    assert u.lapsed and u.weeks == 8
    got = {c["kind"]: c for c in build(u)}
    assert got["sessions"]["target"] == 1.0 and got["sessions"]["level"] == -1  # round(2.25) - 1
    assert got["distance"]["target"] == 9000.0  # half of 18 km


def test_a_new_athlete_is_not_diluted_by_weeks_before_they_joined_and_a_climber_gets_a_climb():
    history = [entry(1, MONDAY - timedelta(days=5), km=10, climb=400), entry(2, MONDAY - timedelta(days=3), km=10,
                                                                              climb=300)]
    u = usual_week(history, UTC_TZ, MONDAY.date())
    assert u.weeks == 1 and u.sessions == 2.0
    got = {c["kind"]: c for c in build(u)}
    assert got["sessions"]["target"] == 3.0 and got["climb"]["target"] == 800.0  # 700 m + 10%, up to 50 m
    assert usual_week([], UTC_TZ, MONDAY.date()) is None


def test_the_week_is_the_athletes_and_a_daylight_saving_week_has_its_own_length():
    start, end = week_bounds("2026-W43", LONDON)  # 19 to 26 October: summer time ends on the 25th
    assert start == datetime(2026, 10, 18, 23, 0, tzinfo=UTC)
    assert end - start == timedelta(hours=169)
    inside = entry(1, datetime(2026, 10, 25, 23, 30, tzinfo=UTC))  # Sunday 23:30 London (GMT)
    outside = entry(2, datetime(2026, 10, 26, 0, 0, tzinfo=UTC))  # Monday 00:00 London
    assert measure("sessions", None, 2, [inside, outside], start, end) == (1.0, None)


def test_progress_counts_the_sport_and_names_the_activity_that_reached_the_target():
    start, end = week_bounds("2026-W49", UTC_TZ)
    got = measure("distance", "run", 12000, [entry(2, MONDAY + timedelta(days=3), km=7),
                                              entry(1, MONDAY + timedelta(days=1), km=6),
                                              entry(3, MONDAY + timedelta(days=2), km=50, sport="ride")], start, end)
    assert got[0] == 13000 and got[1].id == 2
    assert describe("distance", "run", 12000) == "12.0 km of running this week"
    assert describe("sessions", None, 1) == "1 activity this week"


def test_the_worker_assigns_once_progress_follows_late_syncs_and_cheats(Sessions):
    name, mod = athlete(Sessions), athlete(Sessions, role="moderator")
    for w in range(1, 5):
        for k in range(2):
            add(Sessions, name, 5.0, when=MONDAY - timedelta(weeks=w) + timedelta(days=k, hours=8))
    now = MONDAY + timedelta(days=2)
    done = assign_due(Sessions, now=now)
    assert done["challenges"] >= 2
    again = assign_due(Sessions, now=now)
    with Sessions() as s:
        uid = user_by_name(s, name).id
        mine = {c.kind: c for c in challenges_of(s, uid, now=now)}
    assert not again.get("challenges")  # assigned once: the athlete is not due again this week
    assert mine["sessions"].target == 3.0 and mine["sessions"].week == "2026-W49"
    assert mine["distance"].target == 11000.0  # 10 km a week + 10%
    # A late sync of this week's run, then another: the third activity completes it.
    add(Sessions, name, 5.0, when=MONDAY + timedelta(hours=7))
    add(Sessions, name, 5.0, when=MONDAY + timedelta(days=1, hours=7))
    cheat = add(Sessions, name, 5.0, when=MONDAY + timedelta(days=1, hours=18), flag="sampled")
    run_job(Sessions, now=now)
    with Sessions() as s:
        c = s.get(Challenge, mine["sessions"].id)
        assert (c.progress, c.status, c.completed_by) == (3.0, "completed", cheat)
    assert "challenge_1" in active(Sessions, name)
    # The third was a cheat: the completion and its badge go.
    with Sessions() as s, s.begin():
        decide(s, cheat, user_by_name(s, mod), "confirm")
    run_job(Sessions, now=now)
    with Sessions() as s:
        c = s.get(Challenge, mine["sessions"].id)
        assert (c.progress, c.status, c.completed_by) == (2.0, "active", None)
        award = s.scalars(select(BadgeAward).where(BadgeAward.user_id == uid, BadgeAward.code == "challenge_1")).one()
        assert award.withdrawn_at is not None
    # The week ends unfinished: missed.
    assert end_weeks(Sessions, now=MONDAY + timedelta(days=7, minutes=1)) >= 1
    with Sessions() as s:
        assert s.get(Challenge, mine["sessions"].id).status == "missed"


def test_an_athlete_declines_their_own_active_challenge_with_a_reason(Sessions):
    name, other = athlete(Sessions), athlete(Sessions)
    add(Sessions, name, 5.0, when=MONDAY - timedelta(days=3))
    assign_due(Sessions, now=MONDAY + timedelta(hours=1))
    with Sessions() as s:
        uid, oid = user_by_name(s, name).id, user_by_name(s, other).id
        c = challenges_of(s, uid, now=MONDAY)[0]
    with Sessions() as s, s.begin():
        with pytest.raises(ChallengeError, match="reason"):
            decline(s, uid, c.id, "boring")
        with pytest.raises(ChallengeError, match="no such challenge"):
            decline(s, oid, c.id, "too_hard")
        decline(s, uid, c.id, "too_hard")
    with Sessions() as s, s.begin():
        with pytest.raises(ChallengeError, match="declined"):
            decline(s, uid, c.id, "not_now")
    with Sessions() as s:
        got = s.get(Challenge, c.id)
        assert (got.status, got.decline_reason) == ("declined", "too_hard")


def test_weeks_are_assigned_in_the_athletes_time_zone(Sessions):
    name = athlete(Sessions)
    with Sessions() as s, s.begin():
        update_profile(s, user_by_name(s, name), time_zone="Pacific/Auckland")
    add(Sessions, name, 5.0, when=MONDAY - timedelta(days=4))
    # Sunday 29 November 12:00 UTC is already Monday 30 November in Auckland: week 49 there.
    assign_due(Sessions, now=datetime(2026, 11, 29, 12, 0, tzinfo=UTC))
    with Sessions() as s:
        c = challenges_of(s, user_by_name(s, name).id, now=MONDAY)[0]
        assert c.week == "2026-W49"
        assert c.starts_at == datetime(2026, 11, 29, 11, 0, tzinfo=UTC)  # Monday 00:00 NZDT


def test_a_new_athlete_gets_the_welcome_challenge_and_nobody_stays_due(Sessions):
    """First activity this week: two activities this week, one done; after one round the
    athlete is not due again before next week, so the worker never loops over them. An
    athlete whose only activity is not scored yet, or comes from a device clock in the
    future, gets nothing and is looked at again in an hour, not every round."""
    from core.challenges.assign import due_athletes

    name, unscored, future = athlete(Sessions), athlete(Sessions), athlete(Sessions)
    add(Sessions, name, 3.0, when=MONDAY + timedelta(hours=9))
    add(Sessions, unscored, 3.0, when=MONDAY + timedelta(hours=9), flag=None, routed=False)
    add(Sessions, future, 3.0, when=MONDAY + timedelta(hours=20))
    now = MONDAY + timedelta(hours=12)
    assign_due(Sessions, now=now)
    with Sessions() as s:
        uid = user_by_name(s, name).id
        (c,) = challenges_of(s, uid, now=now)
        assert (c.kind, c.target, c.progress, c.status) == ("sessions", 2.0, 1.0, "active")
        due = set(due_athletes(s, now, limit=10_000))
        assert uid not in due and user_by_name(s, unscored).id not in due
        assert challenges_of(s, user_by_name(s, unscored).id, now=now) == []
        assert user_by_name(s, future).id not in due
        assert uid not in due_athletes(s, MONDAY + timedelta(days=6, hours=23), limit=10_000)
        assert uid in due_athletes(s, MONDAY + timedelta(days=7, minutes=1), limit=10_000)
        assert user_by_name(s, unscored).id in due_athletes(s, now + timedelta(hours=1, minutes=1), limit=10_000)


def test_declining_as_too_hard_lowers_next_weeks_level_and_too_easy_raises_it(Sessions):
    name = athlete(Sessions)
    for w in range(1, 5):
        for k in range(3):
            add(Sessions, name, 5.0, when=MONDAY - timedelta(weeks=w) + timedelta(days=k, hours=8))
    assign_due(Sessions, now=MONDAY + timedelta(hours=1))
    with Sessions() as s:
        uid = user_by_name(s, name).id
        first = {c.kind: c for c in challenges_of(s, uid, now=MONDAY)}
    assert (first["sessions"].level, first["sessions"].target) == (1, 4.0)
    with Sessions() as s, s.begin():
        decline(s, uid, first["sessions"].id, "too_hard")
    nxt = MONDAY + timedelta(weeks=1, hours=1)
    add(Sessions, name, 5.0, when=MONDAY + timedelta(days=1))
    assign_due(Sessions, now=nxt)
    with Sessions() as s:
        second = {c.kind: c for c in challenges_of(s, uid, now=nxt) if c.week == "2026-W50"}
    assert second["sessions"].level == 0 and second["sessions"].target == 3.0  # 13 in 4... usual 3.25 -> 3


def test_a_challenge_cannot_be_declined_once_its_week_is_over_or_it_is_reached(Sessions):
    name = athlete(Sessions)
    add(Sessions, name, 5.0, when=MONDAY - timedelta(days=3))
    assign_due(Sessions, now=MONDAY + timedelta(hours=1))
    with Sessions() as s:
        uid = user_by_name(s, name).id
        c = challenges_of(s, uid, now=MONDAY)[0]
    with Sessions() as s, s.begin():
        s.get(Challenge, c.id).deadline = datetime.now(UTC) - timedelta(minutes=1)
    with Sessions() as s, s.begin():
        with pytest.raises(ChallengeError, match="week is over"):
            decline(s, uid, c.id, "not_now")
    with Sessions() as s, s.begin():
        got = s.get(Challenge, c.id)
        got.deadline, got.progress = datetime.now(UTC) + timedelta(days=1), got.target
    with Sessions() as s, s.begin():
        with pytest.raises(ChallengeError, match="reached already"):
            decline(s, uid, c.id, "not_now")


def test_a_challenge_reached_when_assigned_is_completed_by_the_recount_with_its_badge(Sessions):
    name = athlete(Sessions)
    add(Sessions, name, 5.0, when=MONDAY - timedelta(days=3))
    a = add(Sessions, name, 5.0, when=MONDAY + timedelta(hours=7))
    b = add(Sessions, name, 5.0, when=MONDAY + timedelta(hours=9))
    now = MONDAY + timedelta(hours=12)
    run_job(Sessions, now=now)  # the activities seen before any challenge exists
    assign_due(Sessions, now=now)
    with Sessions() as s:
        uid = user_by_name(s, name).id
        c = next(c for c in challenges_of(s, uid, now=now) if c.kind == "sessions")
        assert (c.target, c.progress, c.status) == (2.0, 2.0, "active")
    run_job(Sessions, now=now)
    with Sessions() as s:
        c = s.get(Challenge, c.id)
        assert (c.status, c.completed_by) == ("completed", b) and a != b
    assert "challenge_1" in active(Sessions, name)


def test_a_late_sync_that_completes_a_challenge_is_heard_though_a_later_run_is_credited(Sessions):
    from core.challenges.award_reads import new_completions

    name = athlete(Sessions)
    add(Sessions, name, 5.0, when=MONDAY - timedelta(days=3))
    assign_due(Sessions, now=MONDAY + timedelta(hours=1))
    tuesday = add(Sessions, name, 5.0, when=MONDAY + timedelta(days=1))
    run_job(Sessions, now=MONDAY + timedelta(days=2))
    monday = add(Sessions, name, 5.0, when=MONDAY + timedelta(hours=8), flag=None, routed=False)  # synced late
    with Sessions() as s:
        uid = user_by_name(s, name).id
        assert sorted(c.kind for c in new_completions(s, uid, monday)) == ["distance", "sessions"]  # 2 runs, 10 km
        assert tuesday != monday


def test_weeks_end_in_chunks(Sessions):
    name = athlete(Sessions)
    add(Sessions, name, 5.0, when=MONDAY - timedelta(days=3), climb=400)
    assign_due(Sessions, now=MONDAY + timedelta(hours=1))
    with Sessions() as s:
        mine = [c.id for c in challenges_of(s, user_by_name(s, name).id, now=MONDAY)]
    assert len(mine) == 3
    end_weeks(Sessions, now=MONDAY + timedelta(days=7, minutes=1), chunk=2)
    with Sessions() as s:
        assert {s.get(Challenge, i).status for i in mine} == {"missed"}


@pytest.mark.parametrize("week", ["2026-W49 ", "+2026-W49", "2026-W4_9", "0001-W01", "2026-W54", "2026-W00",
                                  "2026-49", "", "2101-W01"])
def test_only_a_canonical_iso_week_is_taken(week):
    from core.challenges.assign import canonical_week

    with pytest.raises(ValueError, match="ISO week"):
        canonical_week(week)
    assert canonical_week("2026-W53") == "2026-W53"


def test_the_command_line_assigns_a_week_and_shows_it(Sessions, tmp_path, monkeypatch, capsys):
    import json

    from core.cli import challenges as commands
    from core.cli import main as cli

    name = athlete(Sessions)
    add(Sessions, name, 12.0, when=datetime(2026, 11, 24, 8, tzinfo=UTC))
    monkeypatch.setattr(commands, "open_sessions", lambda: Sessions)
    monkeypatch.setenv("TRACKER_CHALLENGE_POLICY", "fixed")  # the adaptive policy's draws are tested on their own
    assert cli.main(["challenges", "assign", "--week", "2026-W49"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["week"] == "2026-W49" and line["challenges"] >= 2
    assert cli.main(["challenges", "show", "--user", name]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.strip().splitlines()]
    assert {r["kind"] for r in rows} == {"sessions", "distance"}
    assert all(r["week"] == "2026-W49" and r["status"] in ("active", "missed") for r in rows)
    assert {r["challenge"] for r in rows} == {"2 activities this week", "13.5 km of running this week"}
    assert cli.main(["challenges", "assign", "--week", "2026-49"]) == 2
    assert "not an ISO week" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["challenges", "show", "--user", name, "--weeks", "1000000000"])
    assert "1 to 520" in capsys.readouterr().err


def test_a_decline_made_while_the_recount_works_stays_declined(Sessions):
    from core.challenges.awards import plan, write

    name = athlete(Sessions)
    add(Sessions, name, 5.0, when=MONDAY - timedelta(days=3))
    now = MONDAY + timedelta(hours=1)
    assign_due(Sessions, now=now)
    add(Sessions, name, 2.0, when=MONDAY + timedelta(minutes=30))
    with Sessions() as s:
        uid = user_by_name(s, name).id
        c = next(c for c in challenges_of(s, uid, now=now) if c.kind == "sessions")
        p = plan(s, uid, now=now)
    assert any(ch["id"] == c.id for ch in p.challenges)  # the recount would set its progress
    with Sessions() as s, s.begin():
        decline(s, uid, c.id, "not_now")
    write(Sessions, p)
    with Sessions() as s:
        got = s.get(Challenge, c.id)
        assert (got.status, got.decline_reason, got.progress) == ("declined", "not_now", 1.0)


def test_declining_a_distance_as_too_hard_lowers_the_whole_next_week(Sessions):
    name = athlete(Sessions)
    for w in range(1, 5):
        for k in range(3):
            add(Sessions, name, 8.0, when=MONDAY - timedelta(weeks=w) + timedelta(days=k, hours=8))
    assign_due(Sessions, now=MONDAY + timedelta(hours=1))
    with Sessions() as s:
        uid = user_by_name(s, name).id
        distance = next(c for c in challenges_of(s, uid, now=MONDAY) if c.kind == "distance")
    with Sessions() as s, s.begin():
        decline(s, uid, distance.id, "too_hard")
    add(Sessions, name, 8.0, when=MONDAY + timedelta(days=1))
    nxt = MONDAY + timedelta(weeks=1, hours=1)
    assign_due(Sessions, now=nxt)
    with Sessions() as s:
        second = {c.kind: c for c in challenges_of(s, uid, now=nxt) if c.week == "2026-W50"}
    assert second["distance"].level == 0 and second["sessions"].level == 0


def test_a_move_east_across_a_weeks_end_waits_for_the_running_week(Sessions):
    """Assigned week 49 in Pago Pago (UTC-11); on Sunday evening there it is already Monday
    of week 50 in Kiritimati (UTC+14): week 50 comes once week 49's deadline has passed."""
    from core.challenges.assign import reschedule

    name = athlete(Sessions)
    with Sessions() as s, s.begin():
        update_profile(s, user_by_name(s, name), time_zone="Pacific/Pago_Pago")
    add(Sessions, name, 5.0, when=MONDAY - timedelta(days=3))
    assign_due(Sessions, now=MONDAY + timedelta(hours=12))
    sunday_evening = datetime(2026, 12, 7, 6, 0, tzinfo=UTC)  # Sunday 19:00 in Pago Pago
    with Sessions() as s, s.begin():
        user = user_by_name(s, name)
        update_profile(s, user, time_zone="Pacific/Kiritimati")
        reschedule(s, user.id)
    assign_due(Sessions, now=sunday_evening)
    with Sessions() as s:
        uid = user_by_name(s, name).id
        weeks = {c.week for c in challenges_of(s, uid, now=sunday_evening)}
        assert weeks == {"2026-W49"}
    assign_due(Sessions, now=datetime(2026, 12, 7, 11, 1, tzinfo=UTC))  # W49 over in Pago Pago
    with Sessions() as s:
        assert {c.week for c in challenges_of(s, uid, now=sunday_evening)} == {"2026-W49", "2026-W50"}
