"""Leaderboards: the database and Redis give the same boards; Redis is rebuilt when wiped."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.social.follows import follow
from core.social.leaderboards import PERIODS, database_board, period_start, redis_board, refresh_redis
from core.synthetic.tracks import synthetic_track

NOW = datetime.now(UTC)


def _athletes(session, n=12, seed=3):
    rng = random.Random(seed)
    people = [create_user(session, f"lb{seed}_{k}", f"Athlete {k}") for k in range(n)]
    for k, p in enumerate(people):
        for _ in range(rng.randint(0, 5)):
            sport = "run" if rng.random() < 0.6 else "ride"
            days = rng.choice([0.1, 2, 9, 20, 45, 200])
            start = time.time() - days * 86400
            if datetime.fromtimestamp(start, UTC) > NOW:
                continue
            track = synthetic_track(rng, sport, start, 46.0 + k * 0.01, 14.5, rng.uniform(10, 30),
                                    3.0 if sport == "run" else 7.0)
            record_track(session, p, track, visibility=rng.choice(["public", "followers", "private"]),
                         source="demo")
    for p in people[1:6]:
        follow(session, people[0], p)
    session.flush()
    return people


def _same(a, b):
    assert [(e.rank, e.user_id, round(e.distance_m, 6)) for e in a.entries] == \
        [(e.rank, e.user_id, round(e.distance_m, 6)) for e in b.entries]
    assert (a.me and (a.me.rank, a.me.user_id, round(a.me.distance_m, 6))) == \
        (b.me and (b.me.rank, b.me.user_id, round(b.me.distance_m, 6)))
    assert a.athletes == b.athletes


def test_database_and_redis_agree_on_every_board(session, redis_client):
    people = _athletes(session)
    refresh_redis(session, redis_client, NOW)
    for viewer in (people[0], people[7]):
        for period in PERIODS:
            for sport in ("run", "ride"):
                for scope in ("global", "friends"):
                    db = database_board(session, period, sport, scope, viewer.id, limit=4, now=NOW)
                    rd = redis_board(session, redis_client, period, sport, scope, viewer.id, limit=4, now=NOW)
                    assert db.source == "database" and rd.source == "redis"
                    _same(db, rd)


def test_own_rank_shown_outside_the_top(session):
    people = _athletes(session, n=15, seed=5)
    board = database_board(session, "all", "run", "global", None, limit=100, now=NOW)
    last = board.entries[-1]
    mine = database_board(session, "all", "run", "global", last.user_id, limit=3, now=NOW)
    assert len(mine.entries) == 3 and mine.me is not None
    assert mine.me.rank == last.rank > 3
    assert people  # the world was built


def test_private_activities_do_not_count(session):
    user = create_user(session, "lbprivate", "Private")
    rng = random.Random(1)
    record_track(session, user, synthetic_track(rng, "run", time.time() - 3600, 46, 14, 20, 3.0),
                 visibility="private", source="demo")
    board = database_board(session, "week", "run", "global", user.id, now=NOW)
    assert board.me is None


def test_redis_wiped_is_rebuilt_and_a_new_activity_counts_at_the_next_refresh(session, redis_client):
    people = _athletes(session, n=6, seed=9)
    refresh_redis(session, redis_client, NOW)
    before = redis_board(session, redis_client, "all", "run", "global", people[2].id, now=NOW)
    redis_client.flushdb()
    rebuilt = redis_board(session, redis_client, "all", "run", "global", people[2].id, now=NOW)
    _same(before, rebuilt)
    # A long run now: counted after the next refresh, not before.
    record_track(session, people[2], synthetic_track(random.Random(2), "run", time.time() - 7200, 46, 14, 200, 3.5),
                 visibility="public", source="demo")
    session.flush()
    stale = redis_board(session, redis_client, "all", "run", "global", people[2].id, now=NOW)
    _same(before, stale)
    refresh_redis(session, redis_client, NOW)
    fresh = redis_board(session, redis_client, "all", "run", "global", people[2].id, now=NOW)
    assert fresh.me.rank == 1
    _same(fresh, database_board(session, "all", "run", "global", people[2].id, now=NOW))


@pytest.mark.parametrize("period,weekday", [("week", 0), ("month", None)])
def test_period_start(period, weekday):
    start = period_start(period, datetime(2026, 11, 27, 15, 30, tzinfo=UTC))
    assert start.hour == 0 and start <= datetime(2026, 11, 27, tzinfo=UTC)
    if weekday is not None:
        assert start.weekday() == 0 and start == datetime(2026, 11, 23, tzinfo=UTC)
    else:
        assert start == datetime(2026, 11, 1, tzinfo=UTC)
    assert period_start("all") is None
    assert datetime(2026, 11, 27, tzinfo=UTC) - start < timedelta(days=31)
