"""The surfaces not covered in ``test_privacy``: chart series, suggested routes, leaderboard
lines and other athletes' archives show another athlete nothing inside an athlete's privacy
zone or hidden ends, while the athlete sees everything of their own; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
import math
import random
import re
import zipfile

import numpy as np
import pytest
from sqlalchemy import select

from core.accounts.users import user_by_id
from core.activities.imports import record_track
from core.activities.tables import Activity
from core.challenges.groups import create_group, respond
from core.jobs.export_zip import write_export
from core.jobs.shown import settle_shown_distances
from core.recommend import service as recommend
from core.routes import matching
from core.routes.matching import match_pending, rematch_athlete
from core.routes.tables import Route, RouteActivity
from core.social.comments import add_comment
from core.social.follows import follow
from core.social.kudos import give_kudos
from core.social.leaderboards import Entry, database_board
from core.social.privacy import METRES_PER_DEGREE
from core.social.privacy_settings import add_zone, delete_zone, set_hide_ends, zones_of
from core.social.shown import shown_figures
from core.social.zone_attack import outing
from core.storage.points import stored_track, viewer_track
from core.tracks.track import Track
from tests.conftest import database_of_its_own
from tests.core.social.test_privacy import HOME, ago, metres, people, run_from_home, through_the_hidden_centre

ENDS_M = 800.0
# Marks recorded with each point: the hidden ends, the rest of the zone's hidden circle, the rest.
HR_END, HR_ZONE, HR_OUT = 170.0, 160.0, 130.0
ELE_END, ELE_ZONE, ELE_OUT = 900.0, 700.0, 300.0
FAR = (48.21, 16.37)  # where the other athlete runs, well away from the home


@pytest.fixture(params=["sqlite", "postgres"])
def Session(request, tmp_path):
    with database_of_its_own(request.param, tmp_path, "zones") as factory:
        yield factory


def marked_run(session, user, zone, start=None):
    """As ``through_the_hidden_centre``: from the home straight across the zone's hidden circle
    to 20 m past it, 1.5 km along a street at a right angle, and back the same way; walking
    (1.2 m/s) inside the circle and running (3 m/s) outside it, a fix every 5 s. Each point's
    heart rate and elevation say where it is: in the first or last ``ENDS_M`` of the path,
    elsewhere in the circle, or outside it."""
    north = (zone.hidden_lat - HOME[0]) * METRES_PER_DEGREE
    east = (zone.hidden_lon - HOME[1]) * METRES_PER_DEGREE * math.cos(math.radians(HOME[0]))
    d = math.hypot(north, east)
    u = np.array([north, east]) / d
    side = np.array([-u[1], u[0]])
    leaves = zone.hidden_radius_m + d  # along the straight leg
    reach, along, x = leaves + 20, [], 0.0
    while x < reach:
        along.append(x)
        x += 6.0 if x < leaves else 15.0
    out = [u * m for m in along] + [u * reach + side * m for m in np.arange(0, 1500, 15.0)]
    xy = np.array(out + out[::-1])
    n = len(xy)
    lat = HOME[0] + xy[:, 0] / METRES_PER_DEGREE
    lon = HOME[1] + xy[:, 1] / (METRES_PER_DEGREE * math.cos(math.radians(HOME[0])))
    path = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    ends = (path < ENDS_M) | (path[-1] - path < ENDS_M)
    inside = metres(lat, lon, (zone.hidden_lat, zone.hidden_lon)) < zone.hidden_radius_m
    hr = np.where(ends, HR_END, np.where(inside, HR_ZONE, HR_OUT))
    ele = np.where(ends, ELE_END, np.where(inside, ELE_ZONE, ELE_OUT))
    track = Track((start or ago(9000)) + 5.0 * np.arange(n), lat, lon, ele, np.full(n, 5.0), hr, np.full(n, np.nan),
                  sport="run")
    return record_track(session, user, track, visibility="public", source="demo")


def outside_zone(lat, lon, zone) -> bool:
    lat, lon = np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)
    return bool((metres(lat, lon, (zone.hidden_lat, zone.hidden_lon)) >= zone.hidden_radius_m).all()
                and (metres(lat, lon) >= zone.radius_m).all())


# ---------------------------------------------------------------------------------------
# Charts


def test_the_chart_series_another_athlete_gets_leave_out_the_zone_and_the_hidden_ends(session):
    from dashboard.queries import activity_detail

    rosa, fan = people(session, "rosa", "fan")
    follow(session, fan, rosa)
    zone = add_zone(session, rosa, *HOME, 400, rng=random.Random(2))
    run = marked_run(session, rosa, zone)
    full = stored_track(session, run)
    assert {HR_END, HR_ZONE, HR_OUT} <= set(full.hr.tolist())

    def series(detail) -> dict:
        out = {k: np.asarray(detail[k], dtype=float) for k in ("t", "lat", "speed", "ele", "hr", "distance")}
        assert len({v.size for v in out.values()}) == 1  # one value per drawn point
        return out

    mine = series(activity_detail(session, rosa.id, run.id))
    assert mine["t"].size == len(full)
    assert {HR_END, HR_ZONE, HR_OUT} <= set(mine["hr"].tolist())
    assert {ELE_END, ELE_ZONE, ELE_OUT} <= set(mine["ele"].tolist())
    assert np.count_nonzero((mine["speed"] > 0.9) & (mine["speed"] < 1.6)) > 50  # walking in the zone

    # The zone: no heart rate, elevation, speed or time of a point in it.
    detail = activity_detail(session, fan.id, run.id)
    theirs = series(detail)
    seen = viewer_track(session, fan.id, run)
    assert theirs["t"].size > 100 and outside_zone(detail["lat"], detail["lon"], zone)
    assert set(theirs["hr"].tolist()) == {HR_OUT}
    assert set(theirs["ele"].tolist()) == {ELE_OUT}
    assert not np.any((theirs["speed"] > 0.9) & (theirs["speed"] < 1.6))
    hidden_t = set(full.t[full.hr != HR_OUT].tolist())
    assert set(theirs["t"].tolist()) <= set(seen.t.tolist()) and not set(theirs["t"].tolist()) & hidden_t
    # The figures beside the charts are those of what is left, too.
    assert detail["summary"]["max_hr_bpm"] == pytest.approx(HR_OUT)
    assert detail["elevation_gain_m"] < 50 and theirs["distance"][-1] < run.distance_m - 1500

    # Hidden ends alone: what is left of the circle shows, the first and last 800 m do not.
    delete_zone(session, rosa, zone.id)
    set_hide_ends(session, rosa, ENDS_M)
    theirs = series(activity_detail(session, fan.id, run.id))
    assert HR_ZONE in set(theirs["hr"].tolist()) and HR_END not in set(theirs["hr"].tolist())
    assert ELE_END not in set(theirs["ele"].tolist())
    assert theirs["t"].min() > full.t[full.hr != HR_END].min() - 1
    assert theirs["t"].max() < full.t[full.hr != HR_END].max() + 1
    mine = series(activity_detail(session, rosa.id, run.id))
    assert mine["t"].size == len(full) and HR_END in set(mine["hr"].tolist())


# ---------------------------------------------------------------------------------------
# Suggested routes


def _route_points(Session, route_id) -> np.ndarray:
    with Session() as s:
        route = s.get(Route, route_id)
        assert route is not None and len(route.polyline) >= 2
        return np.array([*route.polyline, [route.start_lat, route.start_lon]], dtype=float)


def _settle_routes(Session):
    while match_pending(Session, limit=20):
        pass


def test_routes_suggested_to_another_athlete_keep_out_of_the_zone_and_the_hidden_ends(Session, monkeypatch):
    from dashboard.queries import route_suggestions

    monkeypatch.setattr(matching, "_SECRET", random.Random(5))  # the trimming circles' offsets, seeded
    with Session() as s, s.begin():
        rosa, fan = people(s, "rosa", "fan")
        zone = add_zone(s, rosa, *HOME, 1000, rng=random.Random(2))
        run_id = through_the_hidden_centre(s, rosa, zone).id
        delete_zone(s, rosa, zone.id)  # first shared with nothing hidden
        recommend.update_settings(s, fan.id, sport="run", area=HOME)
    _settle_routes(Session)

    def route_id():
        with Session() as s:
            return s.scalar(select(RouteActivity.route_id).where(RouteActivity.activity_id == run_id))

    before = _route_points(Session, route_id())
    # Shared whole, the route's line comes nearer the home than the zone and the mile reach:
    # what the checks below look for is there to be found.
    assert (metres(before[:, 0], before[:, 1]) < 1000).any()

    def suggested(rid) -> list[np.ndarray]:
        with Session() as s:
            picked = recommend.suggestions_for(s, fan.id, 10)
            page = route_suggestions(s, fan.id, 10)["routes"]
        assert rid in [r.id for r, _ in picked] and rid in [r["id"] for r in page]
        return ([np.array([*r.polyline, [r.start_lat, r.start_lon]], dtype=float) for r, _ in picked]
                + [np.array(r["polyline"], dtype=float) for r in page])

    def hide(change):
        with Session() as s, s.begin():
            change(s, user_by_id(s, rosa.id))
            rematch_athlete(s, rosa.id)  # as the Settings page does
        _settle_routes(Session)

    hide(lambda s, u: add_zone(s, u, *HOME, 1000, rng=random.Random(2)))  # the same hidden circle again
    with Session() as s:
        zone, = zones_of(s, rosa.id)
    for points in suggested(route_id()):
        assert outside_zone(points[:, 0], points[:, 1], zone)

    def ends_instead(s, u):
        delete_zone(s, u, zone.id)
        set_hide_ends(s, u, 1609)

    hide(ends_instead)
    for points in suggested(route_id()):
        assert (metres(points[:, 0], points[:, 1]) >= 1600).all()  # the path leaves the home in a straight line


# ---------------------------------------------------------------------------------------
# Leaderboards


def _numbers(value):
    """Every number a value holds, through dataclasses, mappings and sequences."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _numbers(getattr(value, f.name))
    elif isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield float(value)


def test_a_leaderboard_line_carries_only_the_distance_another_athlete_is_shown(Session):
    with Session() as s, s.begin():
        rosa, fan = people(s, "rosa", "fan")
        zone = add_zone(s, rosa, *HOME, 400, rng=random.Random(2))
        set_hide_ends(s, rosa, ENDS_M)
        ids = [through_the_hidden_centre(s, rosa, zone, start=ago(9000)).id,
               run_from_home(s, rosa, seed=3, start=ago(20000)).id]
    while settle_shown_distances(Session):
        pass
    with Session() as s:
        acts = list(s.scalars(select(Activity).where(Activity.id.in_(ids))))
        own = sum(a.distance_m for a in acts)
        figures = shown_figures(s, fan.id, acts)
        shown = sum(figures[a.id]["distance_m"] if a.id in figures else a.distance_m for a in acts)
        board = database_board(s, "all", "run", "global", fan.id, limit=50)
        mine = database_board(s, "all", "run", "global", rosa.id, limit=50)
    assert shown < own - 2 * ENDS_M  # each run hides at least its two ends
    line = next(e for e in board.entries if e.user_id == rosa.id)
    # A line names the athlete and a distance: no activity to open, no place.
    assert [f.name for f in dataclasses.fields(Entry)] == ["rank", "user_id", "name", "username", "distance_m"]
    assert line.distance_m == pytest.approx(shown, rel=1e-9)
    assert mine.me is not None and mine.me.distance_m == pytest.approx(shown, rel=1e-9)
    places = [x for x in _numbers(board) if x != int(x) and (abs(x - HOME[0]) < 1 or abs(x - HOME[1]) < 1)]
    assert places == []


# ---------------------------------------------------------------------------------------
# Archives

NUMBER = re.compile(r"(?<![\d:.\-])-?\d{1,3}\.\d+")


def _positions(text: str) -> list[tuple[float, float]]:
    """Every pair of numbers written one after the other that could be a position near the
    home (a CSV row, a GPX point, a JSON pair or start_lat/start_lon)."""
    nums = [float(m) for m in NUMBER.findall(text)]
    return [(a, b) for a, b in zip(nums, nums[1:], strict=False)
            if abs(a - HOME[0]) < 0.2 and abs(b - HOME[1]) < 0.2]


def _archive(Session, user_id) -> dict[str, str]:
    out = io.BytesIO()
    write_export(Session, user_id, out)
    with zipfile.ZipFile(io.BytesIO(out.getvalue())) as zf:
        return {name: zf.read(name).decode("utf-8", "replace") for name in zf.namelist()}


def test_an_archive_holds_nothing_of_another_athletes_zone_or_hidden_ends(Session, monkeypatch):
    monkeypatch.setattr(matching, "_SECRET", random.Random(5))
    with Session() as s, s.begin():
        rosa, fan = people(s, "rosa", "fan")
        follow(s, fan, rosa)
        follow(s, rosa, fan)
        zone = add_zone(s, rosa, *HOME, 400, rng=random.Random(2))
        set_hide_ends(s, rosa, 500)
        run = through_the_hidden_centre(s, rosa, zone, start=ago(9000))
        recommend.update_settings(s, fan.id, sport="run", area=(HOME[0] + 0.03, HOME[1] + 0.03))  # fan's own
    _settle_routes(Session)
    with Session() as s:  # before fan runs anywhere: suggested from the area stated
        picked = recommend.suggestions_for(s, fan.id, 10)
        route_ids = [r.id for r, _ in picked]
    assert route_ids, "the route rosa's run shapes is suggested to fan"
    recommend.store(Session, fan.id, [x for _, x in picked])
    with Session() as s, s.begin():
        fan, rosa = user_by_id(s, fan.id), user_by_id(s, rosa.id)
        own = record_track(s, fan, outing(random.Random(4), *FAR, ago(30000)), visibility="public", source="demo")
        add_comment(s, fan, run.id, "Lovely morning for it")
        give_kudos(s, fan, run.id)
        add_comment(s, rosa, own.id, "Nice pace")
        add_comment(s, rosa, run.id, "Legs heavy today")
        group = create_group(s, fan, "most_distance", [rosa.id], sport="run")
        respond(s, rosa.id, group.id, True)
        recommend.give(s, fan.id, route_ids[0], "save")
    _settle_routes(Session)

    theirs = _archive(Session, fan.id)
    assert "Lovely morning for it" in theirs["social.json"] and str(run.id) in theirs["social.json"]
    assert str(route_ids[0]) in theirs["engagement.json"]
    leaked = [(name, p) for name, text in theirs.items() for p in _positions(text)
              if not outside_zone([p[0]], [p[1]], zone) or metres(p[0], p[1]) < 500]
    assert leaked == []

    # The athlete's own archive holds the whole run, zone and ends included: the reading above
    # finds positions where there are some.
    mine = _archive(Session, rosa.id)
    inside = [p for text in mine.values() for p in _positions(text) if metres(p[0], p[1]) < 400]
    assert len(inside) > 20
