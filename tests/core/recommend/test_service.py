"""Suggestions from a real database: training and precomputed lists, feedback that changes
the next list, cold start from settings, athletes to follow, and privacy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import sessionmaker

from core.accounts.users import create_user, user_by_name
from core.activities.imports import record_track
from core.activities.tables import Activity
from core.recommend.athletes import suggest_athletes
from core.recommend.service import (
    SignalError,
    give,
    is_discoverable,
    saved_routes,
    suggestions_for,
    take_back,
    train,
    update_settings,
)
from core.recommend.tables import RouteSuggestion
from core.routes.matching import match_pending
from core.routes.shape import TRIM_M
from core.routes.tables import Route
from core.social.follows import follow
from core.storage.engine import make_engine
from core.storage.points import positions
from core.storage.schema import migrate
from tests.core.routes.ways import metres_from, polygon, track, walk

ROOT = Path(__file__).resolve().parents[3]
LAT0, LON0 = 52.37, 4.89
DAY = 86400.0
NOW = 1_790_000_000.0  # the activities below are recent, so their athletes are active


def loop(dx, dy, w=1600, h=900):
    return polygon((dx, dy), (dx + w, dy), (dx + w, dy + h), (dx, dy + h))


# Five loops of a neighbourhood: two near the centre, one hilly-looking far one, and so on.
LOOPS = {"North": loop(0, 1200), "East": loop(2200, 0), "South": loop(0, -1500), "West": loop(-2500, 0),
         "Centre": loop(0, 0, 1200, 700)}


@pytest.fixture
def db(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'rec.db'}")
    migrate(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def run(Sessions, username, name, days_ago, visibility="public", frac=0.0, seed=0):
    tr = track(walk(LOOPS[name], 3.0, 5.0, frac), LAT0, LON0, 5.0, seed=seed, t0=NOW - days_ago * DAY)
    with Sessions() as s, s.begin():
        user = user_by_name(s, username) or create_user(s, username)
        return record_track(s, user, tr, visibility=visibility, title=f"{name} Loop", source="demo").id


def settle(Sessions):
    while match_pending(Sessions, limit=20):
        pass


def names(Sessions, user, limit=10):
    with Sessions() as s:
        uid = user_by_name(s, user).id
        return [(r.name, sug.reason) for r, sug in suggestions_for(s, uid, limit)]


@pytest.fixture
def town(db):
    """Six athletes on five loops; ann has run North and Centre, others more."""
    plan = {"ann": ["North", "North", "Centre"], "bob": ["North", "East", "Centre", "East"],
            "cat": ["North", "East", "South"], "dan": ["Centre", "East"], "eve": ["West", "South"],
            "fay": ["North", "Centre", "East", "East"]}
    seed = 0
    for user, loops in plan.items():
        for i, name in enumerate(loops):
            seed += 1
            run(db, user, name, days_ago=40 - 5 * i - seed % 3, frac=(seed % 5) / 5, seed=seed)
    settle(db)
    return db


def test_suggestions_are_routes_to_try_with_reasons_and_feedback_changes_them(town):
    done = train(town)
    assert done["routes"] == 5 and done["athletes"] == 6
    got = names(town, "ann")
    assert got and {n for n, _ in got} <= {"East Loop", "South Loop", "West Loop"}  # never one she ran
    assert all(reason for _, reason in got)
    with town() as s:
        ann = user_by_name(s, "ann").id
        east = s.scalar(select(Route.id).where(Route.name == "East Loop"))
        north = s.scalar(select(Route.id).where(Route.name == "North Loop"))
    # "Not for me": gone from the list at once, and from the next training's too.
    with town() as s, s.begin():
        give(s, ann, east, "dismiss")
    assert "East Loop" not in [n for n, _ in names(town, "ann")]
    train(town)
    assert "East Loop" not in [n for n, _ in names(town, "ann")]
    with town() as s, s.begin():
        take_back(s, ann, east, "dismiss")
        give(s, ann, east, "save")
        assert [r.id for r in saved_routes(s, ann)] == [east]
    assert "East Loop" not in [n for n, _ in names(town, "ann")]  # saved: on her list of saved routes
    # Ratings: whole stars, and only of a route she completed.
    with town() as s, s.begin():
        give(s, ann, north, "rating", 5)
        for bad in (0, 6, 3.5, True):
            with pytest.raises(SignalError):
                give(s, ann, north, "rating", bad)
        with pytest.raises(SignalError, match="after completing"):
            give(s, ann, east, "rating", 4)
        with pytest.raises(SignalError):
            give(s, ann, 10_000, "save")


def test_doing_a_suggested_route_takes_it_off_the_list(town):
    train(town)
    first = names(town, "ann")[0][0]
    run(town, "ann", first.removesuffix(" Loop"), days_ago=1, seed=99)
    settle(town)
    assert first not in [n for n, _ in names(town, "ann")]


def test_a_new_athlete_gets_suggestions_from_what_they_stated(town):
    train(town)
    with town() as s, s.begin():
        new = create_user(s, "newbie")
        assert is_discoverable(s, new.id)  # findable unless they say otherwise
        update_settings(s, new.id, sport="run", usual_distance_m=5000, terrain="flat", area=(LAT0 + 0.001, LON0))
        for bad in ({"sport": "swim"}, {"usual_distance_m": -1.0}, {"terrain": "steep"}, {"area": (95.0, 0.0)}):
            with pytest.raises(ValueError):
                update_settings(s, new.id, **bad)
    got = names(town, "newbie")
    assert got, "a new athlete with an area gets suggestions at once"
    assert any("as you asked" in reason for _, reason in got)
    with town() as s, s.begin():
        create_user(s, "nowhere")
    assert names(town, "nowhere") == []  # no area, no history: nothing to go on


def test_private_activities_give_nothing_away(db):
    """A private loop forms no route, no suggestion and no reason; its athlete is never
    suggested to anyone from it; suggested polylines keep clear of every start."""
    run(db, "pia", "West", days_ago=3, visibility="private", seed=1)
    run(db, "pia", "West", days_ago=2, visibility="followers", seed=2)
    run(db, "ann", "North", days_ago=5, seed=3)
    run(db, "bob", "North", days_ago=4, seed=4)
    run(db, "bob", "East", days_ago=3, seed=5)
    settle(db)
    train(db)
    with db() as s:
        assert s.scalar(select(Route.id).where(Route.name == "West Loop")) is None
        ann = user_by_name(s, "ann").id
        reasons = " ".join(sug.reason for _, sug in suggestions_for(s, ann))
        assert "West" not in reasons and "pia" not in reasons
        assert "pia" not in [a.user.username for a in suggest_athletes(s, ann)]
        # No public activity's start or end lies on any polyline.
        ends = []
        for a in s.scalars(select(Activity).where(Activity.visibility == "public")):
            fixes = positions(s, a.id)
            ends += [fixes[0][1:], fixes[-1][1:]]
        assert len(ends) == 6
        for route in s.scalars(select(Route)):
            for lat, lon in route.polyline:
                assert min(metres_from(lat, lon, *e) for e in ends) > TRIM_M


def test_athletes_to_follow_are_partners_or_friends_of_friends_who_allow_it(town):
    with town() as s, s.begin():
        ann, bob, cat, fay = (user_by_name(s, n) for n in ("ann", "bob", "cat", "fay"))
        follow(s, ann, bob)
        follow(s, bob, cat)
        update_settings(s, fay.id, discoverable=False)
    with town() as s:
        got = suggest_athletes(s, ann.id)
        names_ = [a.user.username for a in got]
        assert "bob" not in names_ and "ann" not in names_  # followed already; herself
        assert "fay" not in names_  # she does not want to be found
        assert "cat" in names_
        reason = {a.user.username: a.reason for a in got}
        assert reason["cat"].startswith("followed by 1 athlete you follow")
        assert "dan" in names_ and "Loop like you" in reason["dan"]


def test_the_command_line_prints_suggestions_as_json_lines(town):
    train(town)
    url = town.kw["bind"].url.render_as_string(hide_password=False)
    env = dict(os.environ, TRACKER_DATABASE_URL=url)
    env.pop("TRACKER_REDIS_URL", None)

    def core(*args):
        out = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
        return out.returncode, [json.loads(x) for x in out.stdout.splitlines() if x.startswith("{")], out

    code, lines, out = core("recommend", "routes", "--user", "ann", "--limit", "2")
    assert code == 0, out.stderr
    assert [x["rank"] for x in lines] == [1, 2]
    assert set(lines[0]) >= {"rank", "route_id", "sport", "distance_m", "elevation_gain_m", "start_lat", "start_lon",
                             "polyline", "score", "reason"}
    assert 2 <= len(lines[0]["polyline"]) <= 200
    code, lines, out = core("recommend", "athletes", "--user", "ann")
    assert code == 0 and lines and set(lines[0]) == {"rank", "username", "score", "reason"}
    code, lines, out = core("recommend", "routes", "--user", "nobody")
    assert code == 2 and "no user" in out.stderr
    code, _, out = core("recommend", "evaluate", "--source", "database")
    assert code == 0 and ("too little history" in out.stdout or "too few athletes" in out.stdout)


def test_the_stored_list_is_what_serving_filters(town):
    train(town)
    with town() as s:
        ann = user_by_name(s, "ann").id
        stored = s.scalars(select(RouteSuggestion.route_id).where(RouteSuggestion.user_id == ann)
                           .order_by(RouteSuggestion.rank)).all()
        served = [r.id for r, _ in suggestions_for(s, ann, 50)]
        assert served == list(stored)
    # A route that stops existing (its last public activity went private) is not served.
    with town() as s, s.begin():
        s.execute(update(Activity).values(visibility="private"))
    settle(town)
    with town() as s:
        assert suggestions_for(s, ann) == []


def test_hostile_signals_and_settings_are_refused_with_a_reason(town):
    with town() as s, s.begin():
        ann = user_by_name(s, "ann").id
        for route_id in (2 ** 70, -1, True, "1", None, 1.5):
            with pytest.raises(SignalError, match="no such route"):
                give(s, ann, route_id, "save")
        with pytest.raises(SignalError, match="unknown signal"):
            give(s, ann, 1, "like")
        give(s, ann, 1, "save", float("nan"))  # a save carries no value of its own
        for bad in ({"usual_distance_m": "5"}, {"usual_distance_m": float("inf")}, {"usual_distance_m": True},
                    {"area": (True, False)}, {"area": ("52", "4")}, {"area": (52.0,)}, {"area": (float("nan"), 4.0)},
                    {"discoverable": "false"}, {"sport": ["run"]}, {"terrain": 3}):
            with pytest.raises(ValueError):
                update_settings(s, ann, **bad)


def test_the_model_is_trained_on_pseudonyms_not_athletes_ids(town, monkeypatch):
    """What the recommender is fitted on names nobody: every athlete id is replaced by a
    pseudonym drawn for that training, and the lists still reach the right athletes."""
    import core.recommend.service as service
    from core.accounts.tables import User

    fitted = []
    real = service.Recommender

    def spy(cat, evs, **kw):
        fitted.append((list(evs), kw.get("follows") or {}))
        return real(cat, evs, **kw)

    monkeypatch.setattr(service, "Recommender", spy)
    train(town)
    first = {e.user for e in fitted[0][0]}
    with town() as s:
        ids = set(s.scalars(select(User.id)))
    assert first and not first & ids
    assert not set(fitted[0][1]) & ids and not set().union(*fitted[0][1].values()) & ids
    assert names(town, "ann") and {n for n, _ in names(town, "ann")} <= {"East Loop", "South Loop", "West Loop"}
    train(town)
    assert not {e.user for e in fitted[1][0]} & first  # the next training draws other pseudonyms
