"""Group challenges: only athletes who follow each other, invitations joined or declined,
a board for members only that counts what counts and nothing private; on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.accounts.users import update_profile, user_by_name
from core.activities.tables import Activity
from core.challenges.groups import (
    GroupError,
    board,
    create_group,
    describe_group,
    groups_of,
    mutual_follows,
    respond,
)
from core.social.follows import follow
from tests.core.challenges.conftest import add, athlete, friends

NOW = datetime(2026, 12, 9, 12, 0, tzinfo=UTC)  # Wednesday of ISO week 50


def test_only_mutual_follows_can_be_invited_and_bad_requests_say_why(Sessions):
    a, b, c = athlete(Sessions), athlete(Sessions), athlete(Sessions)
    ida, idb = friends(Sessions, a, b)
    with Sessions() as s, s.begin():
        follow(s, user_by_name(s, a), user_by_name(s, c))  # a follows c, c does not follow back
        idc = user_by_name(s, c).id
        assert [u.id for u in mutual_follows(s, ida)] == [idb]
        me = user_by_name(s, a)
        for kwargs, why in [({"kind": "fastest", "invitees": [idb]}, "kind"),
                            ({"kind": "most_distance", "invitees": [idc]}, "follow you"),
                            ({"kind": "most_distance", "invitees": []}, "at least one"),
                            ({"kind": "most_distance", "invitees": [ida]}, "at least one"),
                            ({"kind": "most_distance", "invitees": [idb], "sport": "swim"}, "sport"),
                            ({"kind": "everyone_sessions", "invitees": [idb], "target": 0}, "whole number"),
                            ({"kind": "everyone_sessions", "invitees": [idb], "target": 2.5}, "whole number"),
                            ({"kind": "everyone_sessions", "invitees": [idb], "target": 15}, "whole number")]:
            with pytest.raises(GroupError, match=why):
                create_group(s, me, now=NOW, **kwargs)


def test_a_months_distance_board_counts_what_friends_may_see_for_members_only(Sessions):
    a, b, c, outsider = (athlete(Sessions) for _ in range(4))
    ida, idb, idc = friends(Sessions, a, b, c)
    with Sessions() as s, s.begin():
        g = create_group(s, user_by_name(s, a), "most_distance", [idb, idc], sport="run", now=NOW)
        gid = g.id
        assert (g.starts_at, g.ends_at) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
        assert describe_group(g) == "most distance this month (running)"
    add(Sessions, a, 10.0, when=datetime(2026, 12, 2, 8, tzinfo=UTC))
    add(Sessions, b, 12.0, when=datetime(2026, 12, 3, 8, tzinfo=UTC))
    add(Sessions, b, 30.0, when=datetime(2026, 11, 30, 8, tzinfo=UTC))  # last month
    add(Sessions, b, 50.0, when=datetime(2026, 12, 4, 8, tzinfo=UTC), sport="ride")  # not a run
    add(Sessions, b, 40.0, when=datetime(2026, 12, 5, 8, tzinfo=UTC), flag="flagged")  # held
    secret = add(Sessions, a, 25.0, when=datetime(2026, 12, 6, 8, tzinfo=UTC))
    with Sessions() as s, s.begin():
        s.get(Activity, secret).visibility = "private"  # tells the board nothing
    with Sessions() as s, s.begin():
        respond(s, idb, gid, join=True, now=NOW)
        respond(s, idc, gid, join=False, now=NOW)
        with pytest.raises(GroupError, match="already declined"):
            respond(s, idc, gid, join=True, now=NOW)
    with Sessions() as s:
        got = board(s, gid, idb, now=NOW)
        assert [(r.username, r.status, r.value) for r in got.rows] == [(b, "joined", 12000.0), (a, "joined", 10000.0)]
        with pytest.raises(GroupError, match="no such"):
            board(s, gid, user_by_name(s, outsider).id)
        with pytest.raises(GroupError, match="no such"):
            board(s, gid, idc, now=NOW)  # declined
        assert [g.id for g, status in groups_of(s, idb, now=NOW)] == [gid]
        assert groups_of(s, idc, now=NOW) == []


def test_everyone_active_this_week_in_the_creators_week(Sessions):
    a, b = athlete(Sessions), athlete(Sessions)
    ida, idb = friends(Sessions, a, b)
    with Sessions() as s, s.begin():
        update_profile(s, user_by_name(s, a), time_zone="Pacific/Auckland")
        g = create_group(s, user_by_name(s, a), "everyone_sessions", [idb], target=2, now=NOW)
        gid = g.id
        assert g.starts_at == datetime(2026, 12, 6, 11, 0, tzinfo=UTC)  # Monday 7 December 00:00 NZDT
        respond(s, idb, gid, join=True, now=NOW)
    for name in (a, b):
        add(Sessions, name, 5.0, when=NOW - timedelta(days=1))
    add(Sessions, a, 5.0, when=NOW)
    with Sessions() as s:
        got = board(s, gid, ida, now=NOW)
        assert [(r.username, r.value, r.done) for r in got.rows] == [(a, 2.0, True), (b, 1.0, False)]
        assert not got.complete
    add(Sessions, b, 5.0, when=NOW + timedelta(hours=1))
    with Sessions() as s:
        assert board(s, gid, ida, now=NOW).complete


def test_an_athlete_runs_at_most_five_group_challenges_at_once(Sessions):
    a, b = athlete(Sessions), athlete(Sessions)
    _, idb = friends(Sessions, a, b)
    with Sessions() as s, s.begin():
        me = user_by_name(s, a)
        for _ in range(5):
            create_group(s, me, "most_distance", [idb], now=NOW)
        with pytest.raises(GroupError, match="already run 5"):
            create_group(s, me, "most_distance", [idb], now=NOW)


def test_each_member_sees_on_the_board_only_what_they_may_see_and_what_counts(Sessions):
    """Carol was invited by alice, but does not follow bob: bob's followers-only run is not
    on her board, while alice (who follows bob) sees it. Unscored, future-dated and
    impossible (infinite) distances count for nobody."""
    a, b, c = athlete(Sessions), athlete(Sessions), athlete(Sessions)
    ida, idb = friends(Sessions, a, b)
    _, idc = friends(Sessions, a, c)
    with Sessions() as s, s.begin():
        gid = create_group(s, user_by_name(s, a), "most_distance", [idb, idc], now=NOW).id
        respond(s, idb, gid, join=True, now=NOW)
        respond(s, idc, gid, join=True, now=NOW)
    shared = add(Sessions, b, 10.0, when=datetime(2026, 12, 2, 8, tzinfo=UTC))
    add(Sessions, b, 3.0, when=datetime(2026, 12, 3, 8, tzinfo=UTC))  # public
    add(Sessions, b, 7.0, when=datetime(2026, 12, 4, 8, tzinfo=UTC), flag=None)  # not scored yet
    add(Sessions, b, 50.0, when=NOW + timedelta(days=5))  # a device clock ahead
    odd = add(Sessions, b, 1.0, when=datetime(2026, 12, 5, 8, tzinfo=UTC))
    with Sessions() as s, s.begin():
        s.get(Activity, shared).visibility = "followers"
        s.get(Activity, odd).distance_m = s.get(Activity, odd).shown_distance_m = float("inf")
    with Sessions() as s:
        by = {r.username: r.value for r in board(s, gid, ida, now=NOW).rows}
        assert by[b] == 13000.0
        by = {r.username: r.value for r in board(s, gid, idc, now=NOW).rows}
        assert by[b] == 3000.0


def test_an_invitation_lapses_with_the_follow_and_a_member_can_leave(Sessions):
    from core.challenges.groups import leave
    from core.social.follows import unfollow

    a, b, c = athlete(Sessions), athlete(Sessions), athlete(Sessions)
    _, idb, idc = friends(Sessions, a, b, c)
    with Sessions() as s, s.begin():
        gid = create_group(s, user_by_name(s, a), "most_distance", [idb, idc], now=NOW).id
        unfollow(s, user_by_name(s, b), user_by_name(s, a))
    with Sessions() as s, s.begin():
        with pytest.raises(GroupError, match="no longer follow"):
            respond(s, idb, gid, join=True, now=NOW)
        respond(s, idc, gid, join=True, now=NOW)
        leave(s, idc, gid)
        with pytest.raises(GroupError, match="no such"):
            board(s, gid, idc, now=NOW)


@pytest.mark.parametrize("target", [float("nan"), float("inf"), "3", None])
def test_a_target_that_is_not_a_whole_number_is_refused_with_the_reason(Sessions, target):
    a, b = athlete(Sessions), athlete(Sessions)
    _, idb = friends(Sessions, a, b)
    with Sessions() as s, s.begin():
        with pytest.raises(GroupError, match="whole number"):
            create_group(s, user_by_name(s, a), "everyone_sessions", [idb], target=target, now=NOW)


def test_everyone_made_it_needs_someone_who_joined_and_no_member_hidden(Sessions):
    """Nobody left who joined is not "everyone made it"; nor is a board that hides a member
    who blocked the viewer (whether they made it is theirs to show)."""
    from core.challenges.groups import leave
    from core.social.follows import block

    a, b, c = athlete(Sessions), athlete(Sessions), athlete(Sessions)
    ida, idb, idc = friends(Sessions, a, b, c)
    with Sessions() as s, s.begin():
        alone = create_group(s, user_by_name(s, a), "everyone_sessions", [idb], target=1, now=NOW).id
        three = create_group(s, user_by_name(s, a), "everyone_sessions", [idb, idc], target=1, now=NOW).id
        respond(s, idb, three, join=True, now=NOW)
        respond(s, idc, three, join=True, now=NOW)
        leave(s, ida, alone)  # b never answered: nobody has joined
    with Sessions() as s:
        assert [(r.status, r.done) for r in board(s, alone, idb, now=NOW).rows] == [("invited", False)]
        assert not board(s, alone, idb, now=NOW).complete
    add(Sessions, a, 5.0, when=NOW)
    add(Sessions, b, 5.0, when=NOW)  # c has done nothing
    with Sessions() as s:
        assert not board(s, three, ida, now=NOW).complete
    with Sessions() as s, s.begin():
        block(s, user_by_name(s, c), user_by_name(s, a))
    with Sessions() as s:
        got = board(s, three, ida, now=NOW)
        assert sorted(r.username for r in got.rows) == sorted([a, b]) and all(r.done for r in got.rows)
        assert not got.complete
    add(Sessions, c, 5.0, when=NOW)
    with Sessions() as s:
        assert not board(s, three, ida, now=NOW).complete  # still hidden: still not said
        assert board(s, three, idb, now=NOW).complete
