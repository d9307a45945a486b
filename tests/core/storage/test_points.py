"""The route points module's interface: writes, reads by activity, by viewer and in bulk, and
deletes, on SQLite and PostgreSQL."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.accounts.users import create_user
from core.activities.tables import Activity
from core.social.follows import follow
from core.storage import points
from core.storage.points import (
    FastInsert,
    count_points,
    delete_newest,
    delete_range,
    insert_new_points,
    insert_points,
    last_point_t,
    newest_point_times,
    positions,
    routes,
    stored_track,
    viewer_route,
    viewer_track,
)

T0 = 1_780_000_000.0


def add_activity(session, user, visibility="public", status="completed", sport="run") -> Activity:
    a = Activity(user_id=user.id, sport=sport, status=status, title=f"{user.username} {visibility}",
                 visibility=visibility)
    session.add(a)
    session.flush()
    return a


def add_points(session, activity_id: int, n: int = 5, first_seq: int = 0) -> list[dict]:
    rows = [{"activity_id": activity_id, "seq": first_seq + k, "t": T0 + first_seq + k,
             "lat": 46.0 + (first_seq + k) * 1e-4, "lon": 14.5, "ele": 300.0, "acc": None, "hr": 140.0,
             "cad": None} for k in range(n)]
    insert_points(session, rows)
    return rows


@pytest.fixture
def people(session):
    """An owner, a follower of theirs and a stranger."""
    owner, follower, stranger = (create_user(session, n) for n in ("pts_owner", "pts_follower", "pts_stranger"))
    follow(session, follower, owner)
    return owner, follower, stranger


def test_read_by_activity_in_time_order_with_count_and_last_point(session, people):
    """The track comes in time order whatever the seqs; the last point is the newest by seq."""
    owner = people[0]
    a = add_activity(session, owner)
    insert_points(session, [
        {"activity_id": a.id, "seq": 0, "t": T0 + 10, "lat": 46.0, "lon": 14.5},
        {"activity_id": a.id, "seq": 1, "t": T0, "lat": 46.1, "lon": 14.6, "hr": 150.0},
        {"activity_id": a.id, "seq": 2, "t": T0 + 5, "lat": None, "lon": None},
    ])
    track = stored_track(session, a)
    assert track.t.tolist() == [T0, T0 + 5, T0 + 10]
    assert track.lat[0] == 46.1 and math.isnan(track.lat[1]) and track.hr[0] == 150.0
    assert track.sport == "run"
    assert positions(session, a.id) == [(T0, 46.1, 14.6), (T0 + 5, None, None), (T0 + 10, 46.0, 14.5)]
    assert last_point_t(session, a.id) == T0 + 5  # seq 2
    assert count_points(session, a.id) == 3
    assert count_points(session, a.id, T0, T0 + 5) == 2
    empty = add_activity(session, owner)
    assert len(stored_track(session, empty)) == 0 and positions(session, empty.id) == []
    assert last_point_t(session, empty.id) is None and count_points(session, empty.id) == 0


def test_writes_skip_stored_points_and_bulk_imports_add_new_ones(session, people):
    a = add_activity(session, people[0], status="active")
    add_points(session, a.id, 3)
    again = [{"activity_id": a.id, "seq": k, "t": T0 + k, "lat": 0.0, "lon": 0.0} for k in (2, 3)]
    assert insert_points(session, again) == 1  # seq 2 was stored
    insert_new_points(session, [(a.id, 10, T0 + 10, 46.1, 14.5, None, None, None, None)])
    assert count_points(session, a.id) == 5
    assert positions(session, a.id)[2] == (T0 + 2, 46.0 + 2e-4, 14.5)


def test_the_ingest_fast_path_tells_which_rows_were_new(session, people):
    """Plain (five-value) and full rows, resent ones and new ones, in the caller's transaction."""
    a = add_activity(session, people[0], status="active")
    conn = session.connection().connection
    insert = FastInsert(conn.driver_connection, session.get_bind().dialect.name)
    cur = conn.cursor()
    try:
        first = [(a.id, 0, T0, 46.0, 14.5), (a.id, 1, T0 + 1, 46.0001, 14.5, 300.0, 4.0, 140.0, 80.0)]
        assert insert(cur, first) == {(a.id, 0), (a.id, 1)}
        assert insert(cur, [(a.id, 1, T0 + 1, 0.0, 0.0), (a.id, 2, T0 + 2, 46.0002, 14.5)]) == {(a.id, 2)}
    finally:
        cur.close()
    track = stored_track(session, a)
    assert track.t.tolist() == [T0, T0 + 1, T0 + 2]
    assert track.hr[1] == 140.0 and math.isnan(track.hr[0]) and track.lat[1] == 46.0001


@pytest.mark.parametrize("visibility, owner, follower, stranger, nobody", [
    ("public", True, True, True, True),
    ("followers", True, True, False, False),
    ("private", True, False, False, False),
])
def test_read_by_viewer_gives_points_only_to_those_who_may_see_them(session, people, visibility, owner, follower,
                                                                    stranger, nobody):
    a = add_activity(session, people[0], visibility)
    add_points(session, a.id, 4)
    for viewer_id, allowed in ((people[0].id, owner), (people[1].id, follower), (people[2].id, stranger),
                               (None, nobody)):
        track = viewer_track(session, viewer_id, a)
        route = viewer_route(session, viewer_id, a)
        if allowed:
            assert len(track) == 4 and track.t.tolist() == stored_track(session, a).t.tolist()
            assert route[0].tolist() == [46.0 + k * 1e-4 for k in range(4)] and route[1].tolist() == [14.5] * 4
        else:
            assert track is None and route is None, (visibility, viewer_id)


def test_read_by_viewer_hides_an_activity_still_recording_from_all_but_its_owner(session, people):
    a = add_activity(session, people[0], "public", status="active")
    add_points(session, a.id, 3)
    assert len(viewer_track(session, people[0].id, a)) == 3
    assert viewer_track(session, people[1].id, a) is None and viewer_route(session, people[2].id, a) is None
    assert viewer_track(session, people[0].id, None) is None and viewer_route(session, people[0].id, None) is None
    bare = add_activity(session, people[0])
    lat, lon = viewer_route(session, people[1].id, bare)
    assert lat.size == lon.size == 0


def test_bulk_reads_many_activities_at_once(session, people, monkeypatch):
    """Positions in seq order without the points that have no latitude; activities without
    any are missing; the same across query chunks."""
    monkeypatch.setattr(points, "BULK_CHUNK", 2)
    owner = people[0]
    made = [add_activity(session, owner) for _ in range(5)]
    for k, a in enumerate(made[:4]):
        add_points(session, a.id, k + 1)
    insert_points(session, [{"activity_id": made[0].id, "seq": 99, "t": T0 - 5, "lat": None, "lon": 14.0}])
    found = routes(session, [a.id for a in made])
    assert sorted(found) == sorted(a.id for a in made[:4])
    for k, a in enumerate(made[:4]):
        lat, lon = found[a.id]
        assert lat.dtype == np.float64 and lat.tolist() == [46.0 + j * 1e-4 for j in range(k + 1)]
        assert lon.tolist() == [14.5] * (k + 1)
    assert routes(session, []) == {}
    newest = newest_point_times(session, [a.id for a in made])
    assert newest == {a.id: T0 + k for k, a in enumerate(made[:4])}


def test_delete_a_time_range_and_the_newest_points(session, people):
    a = add_activity(session, people[0])
    add_points(session, a.id, 10)
    assert delete_range(session, a.id, T0 + 2, T0 + 4) == 3  # both ends included
    assert [t for t, _, _ in positions(session, a.id)] == [T0 + k for k in (0, 1, 5, 6, 7, 8, 9)]
    assert delete_range(session, a.id, T0 + 2, T0 + 4) == 0
    assert delete_newest(session, a.id, 4) == 4  # seqs 6 to 9
    assert [t for t, _, _ in positions(session, a.id)] == [T0 + k for k in (0, 1, 5)]
    assert delete_newest(session, a.id, 4) == 1  # seqs 2 to 5, of which only 5 is left
    assert delete_newest(session, a.id, 4) == 2
    assert delete_newest(session, a.id, 4) == 0 and count_points(session, a.id) == 0
