"""The ingest store's group commit on its own, on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.accounts.users import create_user
from core.activities.lifecycle import ActivityClosed, NotFound, change_status, create_activity
from core.storage.points import RoutePoint
from realtime import store as store_module
from realtime.protocol import Point
from realtime.store import Store


def rows(activity_id: int, seqs) -> list[tuple]:
    now = time.time() - 600
    return [(activity_id, seq, now + seq, 46.0 + seq * 1e-4, 14.5, None, None, None, None) for seq in seqs]


@pytest.fixture(params=["one statement", "copy"])
def commit_path(request, monkeypatch):
    """PostgreSQL commits a few rows in one statement and more through COPY: both paths
    give the same answers (SQLite has one path, run twice)."""
    if request.param == "copy":
        monkeypatch.setattr(store_module, "CHECKED_ROWS", 0)
    return request.param


def stored(engine, activity_id: int) -> list[int]:
    with Session(engine) as s:
        return list(s.scalars(select(RoutePoint.seq).where(RoutePoint.activity_id == activity_id)
                              .order_by(RoutePoint.seq)))


def test_one_commit_stores_open_activities_and_refuses_closed_and_missing_ones(engine, db_url, commit_path):
    with Session(engine) as s, s.begin():
        user = create_user(s, f"store_{time.time_ns()}")
        open_, closed = create_activity(s, user, "ride"), create_activity(s, user, "run")
        change_status(s, open_, "start")
        change_status(s, closed, "start")
        change_status(s, closed, "stop")
        change_status(s, closed, "complete")
        ids = open_.id, closed.id
    store = Store(db_url)
    try:
        missing = max(ids) + 1000
        results = store.commit_batches([(ids[0], rows(ids[0], range(5))), (ids[1], rows(ids[1], range(3))),
                                        (missing, rows(missing, range(2)))])
        assert results[0] == set(range(5))
        assert isinstance(results[1], ActivityClosed) and isinstance(results[2], NotFound)
        # Sent again with two new points: only those are stored, the rest are known.
        again = store.commit_batches([(ids[0], rows(ids[0], range(3, 7)))])
        assert again == [{5, 6}]
    finally:
        store.close()
    assert stored(engine, ids[0]) == list(range(7))
    assert stored(engine, ids[1]) == []
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == missing)) == 0


def test_plain_fixes_and_fixes_with_sensor_values_store_alike_in_one_commit(engine, db_url, commit_path):
    """A plain fix takes the short row; one with elevation, accuracy, heart rate or cadence
    the full one. Both land in one commit with every value, and resends of either are known."""
    with Session(engine) as s, s.begin():
        activity = create_activity(s, create_user(s, f"rows_{time.time_ns()}"), "ride")
        change_status(s, activity, "start")
        activity_id = activity.id
    t0 = time.time() - 600
    points = [Point(0, t0, 46.0, 14.5), Point(1, t0 + 3, 46.0001, 14.5, ele=301.5),
              Point(2, t0 + 6, 46.0002, 14.5), Point(3, t0 + 9, None, None, hr=142.0, cad=88.0),
              Point(4, t0 + 12, 46.0004, 14.5, acc=4.0)]
    batch = [p.row(activity_id) for p in points]
    assert [len(r) for r in batch] == [5, 9, 5, 9, 9]
    store = Store(db_url)
    try:
        assert store.commit_batches([(activity_id, batch[:3]), (activity_id, batch[3:])]) == [{0, 1, 2}, {3, 4}]
        assert store.commit_batches([(activity_id, [batch[0], batch[3]])]) == [set()]
    finally:
        store.close()
    with Session(engine) as s:
        got = s.execute(select(RoutePoint.seq, RoutePoint.t, RoutePoint.lat, RoutePoint.lon, RoutePoint.ele,
                               RoutePoint.acc, RoutePoint.hr, RoutePoint.cad)
                        .where(RoutePoint.activity_id == activity_id).order_by(RoutePoint.seq)).all()
    assert [tuple(r) for r in got] == [(p.seq, p.t, p.lat, p.lon, p.ele, p.acc, p.hr, p.cad) for p in points]


def test_the_sqlite_ingest_connection_is_checkpointed_apart_and_never_pooled(sqlite_engine):
    """The hot connection skips foreign-key lookups and WAL checkpoints; it never goes back to the pool."""
    store = Store(sqlite_engine.url.render_as_string(hide_password=False))
    with Session(sqlite_engine) as s, s.begin():
        activity = create_activity(s, create_user(s, f"wal_{time.time_ns()}"), "run")
        change_status(s, activity, "start")
        activity_id = activity.id
    store.commit_batches([(activity_id, rows(activity_id, range(50)))])
    # Its commits leave the WAL to the checkpoint, which copies every committed page.
    frames, copied = store.checkpoint()
    assert frames > 0 and copied == frames
    assert stored(sqlite_engine, activity_id) == list(range(50))
    store._raw()
    store._close_raw()
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_a_batch_sent_twice_in_one_commit_is_stored_by_the_first_copy(engine, db_url, commit_path):
    """A device that resent a batch on a new connection while the first copy still waited:
    both are in one commit, the first reports the points stored, the second as duplicates."""
    with Session(engine) as s, s.begin():
        user = create_user(s, f"store_twice_{time.time_ns()}")
        activity = create_activity(s, user, "run")
        change_status(s, activity, "start")
        activity_id = activity.id
    store = Store(db_url)
    try:
        first, second = store.commit_batches([(activity_id, rows(activity_id, range(5))),
                                              (activity_id, rows(activity_id, range(3, 8)))])
        assert first == set(range(5)) and second == {5, 6, 7}
        same, again = store.commit_batches([(activity_id, rows(activity_id, range(8, 10))),
                                            (activity_id, rows(activity_id, range(8, 10)))])
        assert same == {8, 9} and again == set()
    finally:
        store.close()
    assert stored(engine, activity_id) == list(range(10))


def test_a_completion_is_summarised_before_its_write_and_again_if_a_point_lands_meanwhile(engine, db_url, monkeypatch):
    """The live "complete" works its summary out with no write transaction open and writes it
    as planned; a point that lands between the two makes the write work it out afresh, so
    the stored summary always covers every stored point."""
    from core.activities import summary as summary_module
    from core.activities.tables import Activity

    def stopped_with(n: int) -> int:
        with Session(engine) as s, s.begin():
            a = create_activity(s, create_user(s, f"plan_{time.time_ns()}"), "run")
            change_status(s, a, "start", at=time.time() - 700)
            out = a.id, a.user_id
        assert store.commit_batches([(out[0], rows(out[0], range(n)))]) == [set(range(n))]
        with Session(engine) as s, s.begin():
            change_status(s, s.get(Activity, out[0]), "stop", at=time.time() - 500)
        return out

    inside = []
    real = summary_module.summarise_activity
    monkeypatch.setattr(summary_module, "summarise_activity", lambda s, a: inside.append(a.id) or real(s, a))
    store = Store(db_url)
    try:
        quiet = stopped_with(20)
        store.change_status(*quiet, "complete", None)
        assert inside == []  # the planned summary was written
        late = stopped_with(20)
        plan = store._plan_completion

        def plan_then_a_point_lands(activity_id, user_id):
            planned = plan(activity_id, user_id)
            assert store.commit_batches([(activity_id, rows(activity_id, [20]))]) == [{20}]
            return planned

        monkeypatch.setattr(store, "_plan_completion", plan_then_a_point_lands)
        assert store.change_status(*late, "complete", None).status == "completed"
        assert inside == [late[0]]
    finally:
        store.close()
    with Session(engine) as s:
        assert s.get(Activity, quiet[0]).point_count == 20 and s.get(Activity, quiet[0]).distance_m > 0
        assert s.get(Activity, late[0]).point_count == 21
