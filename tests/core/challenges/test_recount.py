"""What makes the badge recount run again and what it keeps: a route found after the job saw
an activity, an activity the route matcher looks at again, an activity dated ahead whose
date comes; challenges whose status follows their progress (assigned late, reached when the
week ends, a late sync into a week that is over); group invitations after the end; the
simulation's regret quarters on short runs. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select, update

from core.accounts.users import user_by_name
from core.challenges import awards as awards_module
from core.challenges.assign import assign_due, assign_week, challenges_of, end_weeks
from core.challenges.award_reads import new_completions
from core.challenges.awards import pending_users
from core.challenges.groups import GroupError, board, create_group, leave, respond
from core.challenges.simulate import growth
from core.challenges.tables import BadgeActivity, Challenge
from core.routes.tables import Route, RouteActivity
from tests.core.challenges.conftest import active, add, athlete, awards, friends, run_job

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)  # Friday of 2026-W47


def uid(Sessions, name) -> int:
    with Sessions() as s:
        return user_by_name(s, name).id


def routes(Sessions, activity_ids) -> list[int]:
    with Sessions() as s, s.begin():
        made = [Route(kind="loop", shape=b"", representative_id=a, path_m=1.0, turns_per_km=0.0, stops_per_km=0.0,
                      cells=0, polyline=[]) for a in activity_ids]
        s.add_all(made)
        s.flush()
        return [r.id for r in made]


def rematch(Sessions, activity_id, user_id, route_id=None, points=300) -> None:
    """As the route matcher does when a new route appears near an activity that followed
    none: its row deleted, then written again (with the route it now follows, if any)."""
    with Sessions() as s, s.begin():
        s.execute(delete(RouteActivity).where(RouteActivity.activity_id == activity_id))
    with Sessions() as s, s.begin():
        s.add(RouteActivity(activity_id=activity_id, user_id=user_id, visibility="public", held=False,
                            points=points, route_id=route_id))


def test_a_route_found_later_makes_the_athlete_due_and_earns_explorer(Sessions):
    name = athlete(Sessions)
    me = uid(Sessions, name)
    ids = [add(Sessions, name, 3.0, when=NOW - timedelta(days=18 - k), routed=False) for k in range(5)]
    rids = routes(Sessions, ids)
    with Sessions() as s, s.begin():
        for k, a in enumerate(ids):
            s.add(RouteActivity(activity_id=a, user_id=me, visibility="public", held=False, points=300,
                                route_id=rids[k] if k < 4 else None))
    run_job(Sessions, NOW)
    assert "explorer_5" not in active(Sessions, name)
    rematch(Sessions, ids[4], me, route_id=rids[4])
    with Sessions() as s:
        assert me in pending_users(s, limit=1000)
    run_job(Sessions, NOW)
    got = awards(Sessions, name)["explorer_5"]
    assert got.withdrawn_at is None and got.activity_id == ids[4]
    with Sessions() as s:
        assert s.get(BadgeActivity, ids[4]).route_id == rids[4]
        assert me not in pending_users(s, limit=1000)


def test_an_activity_waiting_for_the_matcher_keeps_its_badges(Sessions):
    name = athlete(Sessions)
    me = uid(Sessions, name)
    x = add(Sessions, name, 12.0, when=NOW - timedelta(days=18))
    run_job(Sessions, NOW)
    assert {"run_5k", "run_10k"} <= active(Sessions, name)
    with Sessions() as s, s.begin():  # back to the matcher (a new route near its start)
        s.execute(delete(RouteActivity).where(RouteActivity.activity_id == x))
    add(Sessions, name, 3.0, when=NOW - timedelta(days=17))  # and another activity meanwhile
    assert run_job(Sessions, NOW)["withdrawn"] == 0
    assert {"run_5k", "run_10k"} <= active(Sessions, name)
    # The matcher finds it follows no route after all: nothing changed, nothing to do.
    with Sessions() as s, s.begin():
        s.add(RouteActivity(activity_id=x, user_id=me, visibility="public", held=False, points=1200))
    with Sessions() as s:
        assert me not in pending_users(s, limit=1000)
    assert {"run_5k", "run_10k"} <= active(Sessions, name)


def test_an_activity_dated_ahead_counts_once_its_date_comes(Sessions, monkeypatch):
    name = athlete(Sessions)
    me = uid(Sessions, name)
    clock = {"now": NOW}
    monkeypatch.setattr(awards_module, "utcnow", lambda: clock["now"])
    ahead = add(Sessions, name, 10.5, when=NOW + timedelta(days=3))  # a device's clock three days ahead
    add(Sessions, name, 3.0, when=NOW - timedelta(days=5))
    run_job(Sessions, NOW)
    assert "run_10k" not in active(Sessions, name)
    with Sessions() as s:
        assert s.get(BadgeActivity, ahead).counts_from == NOW + timedelta(days=2)
    clock["now"] = NOW + timedelta(days=1)  # not yet
    with Sessions() as s:
        assert me not in pending_users(s, limit=1000)
    clock["now"] = NOW + timedelta(days=2)
    with Sessions() as s:
        assert me in pending_users(s, limit=1000)
    run_job(Sessions, clock["now"])
    assert {"run_5k", "run_10k"} <= active(Sessions, name)
    assert awards(Sessions, name)["run_10k"].activity_id == ahead
    with Sessions() as s:
        assert s.get(BadgeActivity, ahead).counts_from is None
        assert me not in pending_users(s, limit=1000)


def weekly_runs(Sessions, name, first: datetime, weeks: int, km=6.0) -> None:
    for k in range(weeks):
        add(Sessions, name, km, when=first + timedelta(weeks=k))


def test_a_past_week_assigned_reached_is_completed_and_a_running_week_is_no_bar(Sessions):
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)  # Wednesday of 2026-W48
    name = athlete(Sessions)
    me = uid(Sessions, name)
    weekly_runs(Sessions, name, datetime(2026, 9, 15, 8, tzinfo=UTC), 9)  # W38 to W46
    add(Sessions, name, 6.0, when=datetime(2026, 11, 11, 8, tzinfo=UTC))
    add(Sessions, name, 6.0, when=datetime(2026, 11, 12, 8, tzinfo=UTC))  # three in W46
    run_job(Sessions, now)
    assert assign_due(Sessions, now=now)["challenges"] >= 1  # this week's (W48): running
    done = assign_week(Sessions, "2026-W46", now=now)
    assert done["challenges"] >= 1 and done["failed"] == 0
    with Sessions() as s:
        w46 = [c for c in challenges_of(s, me, now=now) if c.week == "2026-W46"]
    assert w46 and all(c.progress >= c.target and c.status == "active" for c in w46)
    assert end_weeks(Sessions, now=now) >= 0
    with Sessions() as s:
        assert all(s.get(Challenge, c.id).status == "active" for c in w46)  # reached: not missed
        assert me in pending_users(s, limit=1000)
    run_job(Sessions, now)
    with Sessions() as s:
        assert [s.get(Challenge, c.id).status for c in w46] == ["completed"] * len(w46)
    assert "challenge_1" in active(Sessions, name)
    # Once more: the athlete has it, and says why nothing more was assigned.
    again = assign_week(Sessions, "2026-W46", now=now)
    assert again["assigned"] == 0 and again["skipped"].get("has_week", 0) >= 1


def test_a_week_older_than_the_recount_looks_back_is_completed_when_assigned(Sessions):
    # Assigned 21 weeks late and reached: the recount no longer looks that far back, so the
    # week is completed as it is written, with the activity that reached it.
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)  # Wednesday of 2026-W48
    name = athlete(Sessions)
    me = uid(Sessions, name)
    weekly_runs(Sessions, name, datetime(2026, 5, 12, 8, tzinfo=UTC), 8)  # W20 to W27
    reaching = [add(Sessions, name, 6.0, when=datetime(2026, 7, 1 + k, 8, tzinfo=UTC)) for k in range(3)]  # W27
    run_job(Sessions, now)
    done = assign_week(Sessions, "2026-W27", now=now)
    assert done["challenges"] >= 1 and done["failed"] == 0
    with Sessions() as s:
        w27 = list(s.scalars(select(Challenge).where(Challenge.user_id == me, Challenge.week == "2026-W27")))
    assert w27
    for c in w27:
        if c.progress >= c.target:
            assert c.status == "completed" and c.completed_by in reaching
        else:
            assert c.status == "missed" and c.completed_by is None
    assert any(c.status == "completed" for c in w27)
    assert end_weeks(Sessions, now=now) == 0


def test_a_challenge_reached_as_its_week_ends_is_completed_not_missed(Sessions):
    name = athlete(Sessions)
    me = uid(Sessions, name)
    weekly_runs(Sessions, name, datetime(2026, 9, 22, 8, tzinfo=UTC), 8, km=4.0)  # W39 to W46
    for d in range(5):
        add(Sessions, name, 4.0, when=datetime(2026, 11, 16 + d, 8, tzinfo=UTC))  # five in W47
    sunday_late = datetime(2026, 11, 22, 23, 30, tzinfo=UTC)
    run_job(Sessions, sunday_late - timedelta(hours=1))
    assign_due(Sessions, now=sunday_late)
    monday = datetime(2026, 11, 23, 0, 5, tzinfo=UTC)
    end_weeks(Sessions, now=monday)
    with Sessions() as s:
        mine = [c for c in challenges_of(s, me, now=monday) if c.week == "2026-W47"]
    assert mine and all(c.status == "active" for c in mine)
    run_job(Sessions, monday)
    with Sessions() as s:
        assert {s.get(Challenge, c.id).status for c in mine} == {"completed"}


def test_a_reached_challenge_stored_missed_and_a_late_sync_into_an_ended_week_complete(Sessions):
    name = athlete(Sessions)
    me = uid(Sessions, name)
    weekly_runs(Sessions, name, datetime(2026, 9, 22, 8, tzinfo=UTC), 8, km=4.0)  # W39 to W46
    add(Sessions, name, 4.0, when=datetime(2026, 11, 17, 8, tzinfo=UTC))  # one in W47
    now = datetime(2026, 11, 19, 12, tzinfo=UTC)
    run_job(Sessions, now)
    assign_due(Sessions, now=now)
    with Sessions() as s:
        mine = {c.kind: c for c in challenges_of(s, me, now=now) if c.week == "2026-W47"}
    sessions = mine["sessions"]
    assert sessions.target == 2.0 and sessions.progress == 1.0
    monday = datetime(2026, 11, 23, 0, 5, tzinfo=UTC)
    assert end_weeks(Sessions, now=monday) >= 1
    with Sessions() as s:
        assert s.get(Challenge, sessions.id).status == "missed"
    # An activity recorded offline in that week arrives on Tuesday: the cue and the recount
    # complete the missed challenge.
    late = add(Sessions, name, 4.0, when=datetime(2026, 11, 21, 8, tzinfo=UTC))
    with Sessions() as s:
        assert sessions.id in {c.id for c in new_completions(s, me, late)}
    run_job(Sessions, monday + timedelta(days=1))
    with Sessions() as s:
        c = s.get(Challenge, sessions.id)
        assert (c.progress, c.status, c.completed_by) == (2.0, "completed", late)
    # A reached challenge stored missed (before it was left for the recount) is corrected.
    with Sessions() as s, s.begin():
        s.execute(update(Challenge).where(Challenge.id == sessions.id)
                  .values(status="missed", completed_by=None, completed_at=None))
    with Sessions() as s:
        assert me in pending_users(s, limit=1000)
    run_job(Sessions, monday + timedelta(days=1))
    with Sessions() as s:
        assert s.get(Challenge, sessions.id).status == "completed"
        assert me not in pending_users(s, limit=1000)


def test_an_ended_group_cannot_be_joined_and_a_creator_who_left_is_not_named(Sessions):
    a, b, c = athlete(Sessions), athlete(Sessions), athlete(Sessions)
    ida, idb, idc = friends(Sessions, a, b, c)
    t = datetime(2026, 11, 18, 12, tzinfo=UTC)  # Wednesday of 2026-W47
    with Sessions() as s, s.begin():
        g = create_group(s, user_by_name(s, a), "everyone_sessions", [idb, idc], target=2, now=t)
        gid, ends = g.id, g.ends_at
    with Sessions() as s, s.begin():
        respond(s, idb, gid, True, now=t)
        leave(s, ida, gid)
    with Sessions() as s:
        got = board(s, gid, idb, now=t)
        assert (got.creator, got.creator_username) == ("", "")
        assert [r.user_id for r in got.rows] == [idb, idc]
    with Sessions() as s, s.begin():
        with pytest.raises(GroupError, match="ended"):
            respond(s, idc, gid, True, now=ends)
    with Sessions() as s, s.begin():
        assert respond(s, idc, gid, False, now=ends).status == "declined"


@pytest.mark.parametrize("weeks, want", [
    ([0.3], [0.3, 0.3, 0.3, 0.3]),
    ([0.3, 0.5], [0.3, 0.3, 0.2, 0.2]),
    ([0.3, 0.5, 0.6], [0.3, 0.2333, 0.1667, 0.1]),
    ([0.1, 0.2, 0.3, 0.4], [0.1, 0.1, 0.1, 0.1]),
])
def test_regret_quarters_of_short_runs_are_parts_of_weeks(weeks, want):
    assert growth(weeks)["per_week_by_quarter"] == want


def test_regret_quarters_of_longer_runs_are_whole_weeks():
    regret = [0.1 * k * k for k in range(1, 27)]  # 26 weeks: quarters of 6, 7, 7 and 6 weeks
    r = [0.0, *regret]
    edges = [0, 6, 13, 20, 26]
    want = [round((r[b] - r[a]) / (b - a), 4) for a, b in zip(edges[:-1], edges[1:])]
    assert growth(regret)["per_week_by_quarter"] == want


def test_a_reached_challenge_is_learnt_as_completed(Sessions):
    from core.challenges.adaptive import POLICY, _outcomes

    name = athlete(Sessions)
    me = uid(Sessions, name)
    start = datetime(2026, 10, 5, tzinfo=UTC)
    with Sessions() as s, s.begin():
        c = Challenge(user_id=me, week="2026-W41", kind="sessions", target=2.0, usual=1.0, level=1, policy=POLICY,
                      starts_at=start, deadline=start + timedelta(weeks=1), progress=2.0, status="active",
                      context="[0.5]")
        s.add(c)
        s.flush()
        cid = c.id
    with Sessions() as s:
        got = {o[0]: o for o in _outcomes(s, start + timedelta(weeks=2, days=1), 10_000)}
    assert got[cid][3] == 0.5  # completed, no activity the week after
    with Sessions() as s, s.begin():
        s.execute(delete(Challenge).where(Challenge.id == cid))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_migration_marks_what_was_seen_dated_ahead_and_goes_back(kind, tmp_path):
    from sqlalchemy import text

    from core.accounts.users import create_user
    from core.storage.schema import downgrade, migrate
    from tests.conftest import database_of_its_own

    seen = datetime(2026, 11, 20, 12, tzinfo=UTC)
    with database_of_its_own(kind, tmp_path, "recount_migration") as S:
        engine = S.kw["bind"]
        with S() as s, s.begin():
            me = create_user(s, "runner").id
        downgrade(engine, "0028")
        rows = [(1, seen - timedelta(days=2)), (2, seen + timedelta(hours=20)), (3, seen + timedelta(days=3))]
        with engine.begin() as conn:
            for activity_id, start in rows:
                conn.execute(text("INSERT INTO badge_activities (activity_id, user_id, held, points, start_time, "
                                  "seen_at) VALUES (:a, :u, false, 100, :start, :seen)"),
                             {"a": activity_id, "u": me, "start": start.replace(tzinfo=None),
                              "seen": seen.replace(tzinfo=None)})
        migrate(engine)
        with S() as s:
            got = {b.activity_id: (b.route_id, b.counts_from) for b in s.scalars(select(BadgeActivity))}
        assert got == {1: (None, None), 2: (None, None), 3: (None, seen + timedelta(days=2))}
        downgrade(engine, "0028")
        migrate(engine)
