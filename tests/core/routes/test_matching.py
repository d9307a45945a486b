"""Routes found in stored activities, on SQLite and PostgreSQL: grouping, figures, the
worker's incremental matching, and privacy (only public activities shape a route, nobody's
door is on one, a change of visibility withdraws what an activity gave)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.tables import Activity
from core.routes.matching import athlete_routes, match_pending, routes_near
from core.routes.shape import TRIM_M
from core.routes.tables import Route, RouteActivity, RouteCell
from core.tracks.formats import load_track
from tests.conftest import database_of_its_own
from tests.core.routes.ways import LONG_RIDE, LOOP, metres_from, track, walk

LAT0, LON0 = 51.50, -0.12


@pytest.fixture(params=["sqlite", "postgres"])
def Sessions(request, tmp_path):
    """A session factory on a database of its own (the matcher reads every activity)."""
    with database_of_its_own(request.param, tmp_path, "routes") as Sessions:
        yield Sessions


def add(Sessions, username, tr, visibility="public", title=None):
    with Sessions() as s, s.begin():
        from core.accounts.users import user_by_name
        user = user_by_name(s, username) or create_user(s, username)
        activity = record_track(s, user, tr, visibility=visibility, title=title, source="demo")
        return activity.id


def loop_run(start_frac, reverse=False, seed=1, t0=1_760_000_000.0):
    return track(walk(LOOP, 3.0, 5.0, start_frac, reverse), LAT0, LON0, 5.0, seed=seed, t0=t0)


def match_all(Sessions):
    done = {}
    while True:
        step = match_pending(Sessions, limit=10)
        if not step:
            return done
        for k, v in step.items():
            done[k] = done.get(k, 0) + v


def routes(Sessions):
    with Sessions() as s:
        return list(s.scalars(select(Route).order_by(Route.id)))


def member(Sessions, activity_id):
    with Sessions() as s:
        return s.get(RouteActivity, activity_id)


def test_activities_along_one_loop_form_one_route_with_its_figures(Sessions):
    a = add(Sessions, "ann", loop_run(0.0, seed=1), title="Park Loop")
    b = add(Sessions, "ben", loop_run(0.45, reverse=True, seed=2, t0=1_760_100_000.0), title="Park Loop")
    c = add(Sessions, "ann", loop_run(0.1, seed=3, t0=1_760_200_000.0))
    ride = add(Sessions, "ben", track(walk(LONG_RIDE, 8.0, 3.0), LAT0, LON0, 3.0, sport="ride", seed=4))
    done = match_all(Sessions)
    assert done["new"] == 2 and done["matched"] == 2
    loop, long_ride = routes(Sessions)
    assert loop.kind == "loop" and long_ride.kind == "one_way"
    assert (loop.activities, loop.athletes) == (3, 2)
    assert loop.name == "Park Loop"
    assert loop.sports == {"run": 3} and 2.9 < loop.speeds["run"] < 3.6  # GPS scatter adds a little
    assert 5800 < loop.distance_m < 7000 and loop.pace_ratio == pytest.approx(1.0, abs=0.05)
    assert member(Sessions, b).direction == -1 and member(Sessions, c).direction == 1
    assert member(Sessions, ride).route_id == long_ride.id
    assert long_ride.name.endswith("one way")  # no title of its own: named by its figures
    with Sessions() as s:
        mine = athlete_routes(s, member(Sessions, a).user_id)
        assert [(r.id, n) for r, n, _ in mine] == [(loop.id, 2)]
        assert loop.id in {r.id for r in routes_near(s, LAT0, LON0)}
    # Matching is incremental: nothing is pending any more.
    assert match_pending(Sessions) == {}


def test_no_door_is_on_a_route(Sessions):
    """The polyline keeps clear of where every counting activity began and ended."""
    starts = [0.0, 0.3, 0.55, 0.8]
    ids = [add(Sessions, f"door{i}", loop_run(f, seed=10 + i, t0=1_760_000_000.0 + i * 9000))
           for i, f in enumerate(starts)]
    match_all(Sessions)
    (route,) = routes(Sessions)
    assert 2 <= len(route.polyline) <= 200
    with Sessions() as s:
        ends = [(m.start_lat, m.start_lon) for m in s.scalars(select(RouteActivity))]
        ends += [(m.end_lat, m.end_lon) for m in s.scalars(select(RouteActivity))]
    assert len(ends) == 2 * len(ids)
    for lat, lon in route.polyline:
        assert min(metres_from(lat, lon, *e) for e in ends) > TRIM_M
    assert metres_from(route.start_lat, route.start_lon, *ends[0]) > TRIM_M


def test_only_public_activities_shape_routes(Sessions):
    private = add(Sessions, "pia", loop_run(0.0, seed=1), visibility="private", title="My secret loop")
    followers = add(Sessions, "pia", loop_run(0.2, seed=2, t0=1_760_100_000.0), visibility="followers")
    match_all(Sessions)
    assert routes(Sessions) == []
    assert member(Sessions, private).route_id is None and not member(Sessions, private).counted
    # A public run makes the route; the private ones follow it, for their athlete's eyes only.
    public = add(Sessions, "pat", loop_run(0.5, seed=3, t0=1_760_200_000.0), title="Open loop")
    match_all(Sessions)
    (route,) = routes(Sessions)
    assert route.representative_id == public and (route.activities, route.athletes) == (1, 1)
    assert route.name == "Open loop"
    for hidden in (private, followers):
        m = member(Sessions, hidden)
        assert m.route_id == route.id and not m.counted
    # The private activity's start does not move the polyline either: only counting ends trim it.
    with Sessions() as s:
        counted_ends = [(m.start_lat, m.start_lon) for m in s.scalars(select(RouteActivity).where(
            RouteActivity.counted))]
    assert len(counted_ends) == 1


def test_a_change_of_visibility_withdraws_what_an_activity_gave(Sessions):
    first = add(Sessions, "vic", loop_run(0.0, seed=1), title="Vic's loop")
    second = add(Sessions, "val", loop_run(0.5, seed=2, t0=1_760_100_000.0), title="Val's loop")
    match_all(Sessions)
    (route,) = routes(Sessions)
    assert route.representative_id == first and route.activities == 2
    # The representative goes private: another activity stands for the route, its name and
    # ends are forgotten.
    with Sessions() as s, s.begin():
        s.execute(update(Activity).where(Activity.id == first).values(visibility="private"))
    done = match_all(Sessions)
    assert done["route_updated"] >= 1
    (route,) = routes(Sessions)
    assert route.representative_id == second and route.activities == 1 and route.name == "Val's loop"
    assert not member(Sessions, first).counted
    with Sessions() as s:
        assert s.scalar(select(RouteCell.route_id).where(RouteCell.route_id == route.id).limit(1)) == route.id
    # The last public one goes private too: nothing counts, the route is gone.
    with Sessions() as s, s.begin():
        s.execute(update(Activity).where(Activity.id == second).values(visibility="followers"))
    match_all(Sessions)
    assert routes(Sessions) == []
    with Sessions() as s:
        assert s.scalar(select(RouteCell.route_id).limit(1)) is None
        assert all(m.route_id is None for m in s.scalars(select(RouteActivity)))


def test_a_held_activity_forms_no_route(Sessions):
    held = add(Sessions, "hal", loop_run(0.0, seed=1))
    with Sessions() as s, s.begin():
        s.execute(update(Activity).where(Activity.id == held).values(held=True))
    match_all(Sessions)
    assert routes(Sessions) == []
    with Sessions() as s, s.begin():  # a moderator clears it: it is matched again and counts
        s.execute(update(Activity).where(Activity.id == held).values(held=False))
    match_all(Sessions)
    assert [r.representative_id for r in routes(Sessions)] == [held]


def test_real_rides_over_the_same_road_form_one_route(Sessions, shared_tracks):
    names = ["2018-10-03-07-45-28.fit", "2018-10-03-08-05-11.fit", "2018-10-03-08-23-16.fit",
             "activity_790564264.tcx", "activity_790564346.tcx"]
    ids = {}
    for i, name in enumerate(names):
        tr = load_track(name, (shared_tracks / "goldencheetah" / name).read_bytes())
        ids[name] = add(Sessions, f"rider{i % 2}", tr)
    match_all(Sessions)
    found = routes(Sessions)
    assert len(found) == 2
    route_ids = {name: member(Sessions, i).route_id for name, i in ids.items()}
    assert len({route_ids[n] for n in names[:3]}) == 1 and len({route_ids[n] for n in names[3:]}) == 1
    assert {r.kind for r in found} == {"out_and_back"}
    assert sorted(r.activities for r in found) == [2, 3]


def test_a_deleted_account_takes_its_activities_out_of_routes(Sessions):
    """Deleting an account deletes its activities; the route they stood for is recomputed
    from what remains, or deleted when nothing does. An account deleted by a cascade alone
    (no code clears the route's representative) is found by the matcher's audit."""
    from core.accounts.tables import User
    from core.jobs.deletion import delete_account

    first = add(Sessions, "gone", loop_run(0.0, seed=1), title="Gone's loop")
    second = add(Sessions, "stays", loop_run(0.5, seed=2, t0=1_760_100_000.0), title="Stays' loop")
    match_all(Sessions)
    (route,) = routes(Sessions)
    assert route.representative_id == first
    with Sessions() as s:
        gone = s.scalar(select(User.id).where(User.username == "gone"))
    assert delete_account(Sessions, gone)["deleted"]
    match_all(Sessions)
    (route,) = routes(Sessions)
    assert route.representative_id == second and route.activities == 1 and route.name == "Stays' loop"
    with Sessions() as s, s.begin():
        s.execute(User.__table__.delete().where(User.username == "stays"))
    match_pending(Sessions, limit=10, audit=True)
    assert routes(Sessions) == []


def _segment_distance(p, a, b, lat0):
    """Metres from p to the segment a-b (lat, lon pairs) on a local plane."""
    import math

    k = 111_320.0
    c = math.cos(math.radians(lat0))
    px, py = (p[1] - a[1]) * k * c, (p[0] - a[0]) * k
    bx, by = (b[1] - a[1]) * k * c, (b[0] - a[0]) * k
    t = max(0.0, min(1.0, (px * bx + py * by) / max(bx * bx + by * by, 1e-9)))
    return math.hypot(px - t * bx, py - t * by)


def test_the_drawn_line_never_crosses_a_door(Sessions):
    """Out west and back, then out east and back, from one door: the kept samples lie on
    both sides of the cut, and no segment of the polyline is drawn across it."""
    import numpy as np

    street = np.array([(-3000.0, 0.0), (3000.0, 0.0)])
    there_w = walk(np.array([(0.0, 0.0), (-3000.0, 0.0)]), 3.0, 5.0)
    there_e = walk(np.array([(0.0, 0.0), (3000.0, 0.0)]), 3.0, 5.0)
    xy = np.vstack([there_w, there_w[::-1], there_e, there_e[::-1]])
    door = (LAT0, LON0)
    add(Sessions, "door", track(xy, LAT0, LON0, 5.0, seed=1))
    add(Sessions, "door", track(xy, LAT0, LON0, 5.0, seed=2, t0=1_760_100_000.0))
    match_all(Sessions)
    (route,) = routes(Sessions)
    line = route.polyline
    assert len(line) >= 2 and street is not None
    assert min(_segment_distance(door, a, b, LAT0) for a, b in zip(line, line[1:])) > TRIM_M


def test_a_route_left_half_done_is_finished_by_the_next_round(Sessions):
    """The matcher's write marks the route dirty in the same transaction; if the worker dies
    before recomputing it, the next round does."""
    from core.routes.matching import plan, write

    a = add(Sessions, "ann", loop_run(0.0, seed=1), title="Half done")
    with Sessions() as s:
        p = plan(s, s.get(Activity, a))
    write(Sessions, p)  # ... and the worker stops here
    (route,) = routes(Sessions)
    assert route.dirty and route.polyline == [] and route.activities == 0
    match_pending(Sessions)
    (route,) = routes(Sessions)
    assert not route.dirty and route.polyline and route.activities == 1 and route.name == "Half done"


def test_a_crop_redraws_the_route_and_a_deleted_activity_leaves_its_counts(Sessions):
    from core.storage.points import delete_range, positions

    first = add(Sessions, "cro", loop_run(0.0, seed=1), title="Crop loop")
    second = add(Sessions, "cro", loop_run(0.5, seed=2, t0=1_760_100_000.0))
    match_all(Sessions)
    (route,) = routes(Sessions)
    assert route.representative_id == first and route.activities == 2
    before = route.polyline
    # The athlete crops the last tenth of the representative's run away: it still follows the
    # route, which is drawn again from what is left.
    with Sessions() as s, s.begin():
        fixes = positions(s, first)
        cut = delete_range(s, first, fixes[-len(fixes) // 10][0], fixes[-1][0])
        s.execute(update(Activity).where(Activity.id == first).values(point_count=Activity.point_count - cut))
    match_all(Sessions)
    (route,) = routes(Sessions)
    assert route.representative_id == first and route.activities == 2
    assert route.polyline != before
    # An activity deleted outright (a cascade tells nobody): the audit recounts.
    with Sessions() as s, s.begin():
        s.execute(Activity.__table__.delete().where(Activity.id == second))
    assert match_pending(Sessions) == {}
    match_pending(Sessions, audit=True)
    (route,) = routes(Sessions)
    assert route.activities == 1 and route.athletes == 1
