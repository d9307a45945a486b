"""The points table's athlete column (both databases) and, on PostgreSQL, its partitions by
ranges of activity id: every insert path fills the athlete; the migration converts a table
that holds points and converts it back; partitions are made ahead and rows that landed in
the default partition move into theirs; a closed partition whose activities are all
archived is emptied whole, with no row deleted, killed at any step or when it is busy, and
a writer of other partitions is never failed; a restore racing the emptying inserts its
rows again."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import event, func, inspect, select, text
from sqlalchemy.orm import lazyload, load_only

from core.activities.tables import Activity
from core.config import load_settings
from core.storage import partitions, tiers
from core.storage.base import utcnow
from core.storage.points import (
    FastInsert,
    RoutePoint,
    archive,
    count_points,
    insert_new_keys,
    insert_new_points,
    insert_points,
    stored_track,
)
from core.storage.schema import downgrade, migrate
from tests.conftest import database_of_its_own
from tests.core.storage.tiers_common import T0, hot_count, new_activity, synthetic, user_of


class Killed(BaseException):
    """The process dying at a step."""


def _tables(Session) -> set[str]:
    with Session() as s:
        return {r.name for r in partitions.ranges(s)}


def _rows_in(Session, name: str) -> int:
    with Session() as s:
        return int(s.execute(text(f"SELECT count(*) FROM {name}")).scalar())


def _old(Session, activity_id: int, days: float = 2.0) -> None:
    """Make the activity created ``days`` ago (its partition closes once all are old)."""
    with Session() as s, s.begin():
        s.get(Activity, activity_id).created_at = utcnow() - timedelta(days=days)


def _jump(Session, to: int) -> None:
    """Make the next activity take id ``to`` (PostgreSQL)."""
    with Session() as s, s.begin():
        s.execute(text(f"SELECT setval('activities_id_seq', {to - 1})"))


def _track(Session, activity_id: int) -> np.ndarray:
    with Session() as s:
        # Only the columns every revision has: the test reads through older schemas too.
        activity = s.scalars(select(Activity).where(Activity.id == activity_id).options(
            load_only(Activity.id, Activity.sport, Activity.title), lazyload(Activity.user))).one()
        tr = stored_track(s, activity)
        return np.column_stack([tr.t, tr.lat, tr.lon, tr.ele, tr.hr, tr.cad])


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_every_insert_path_stores_the_athlete_with_each_point(kind, tmp_path):
    with database_of_its_own(kind, tmp_path, "owner") as Session:
        a, b = new_activity(Session, synthetic(5), days_ago=1), new_activity(Session, synthetic(5), days_ago=1)
        with Session() as s, s.begin():
            insert_points(s, [{"activity_id": a, "seq": 100, "t": T0 + 100, "lat": 46.0, "lon": 14.0},
                              {"activity_id": b, "seq": 100, "t": T0 + 100, "lat": 46.0, "lon": 14.0}])
            insert_new_keys(s, [(a, 101, T0 + 101, 46.0, 14.0, None, None, None, None),
                                (b, 101, T0 + 101, 46.0, 14.0, None, None, None, None)])
            insert_new_points(s, [(a, 102, T0 + 102, 46.0, 14.0, 300.0, 4.0, 120.0, 80.0)])
        engine = Session.kw["bind"]
        raw = engine.raw_connection()
        try:
            insert = FastInsert(raw.driver_connection, engine.dialect.name)
            cur = raw.cursor()
            new = insert(cur, [(a, 103, T0 + 103, 46.0, 14.0), (b, 103, T0 + 103, 46.0, 14.0, 1.0, 2.0, 3.0, 4.0)])
            raw.commit()
            assert new == {(a, 103), (b, 103)}
        finally:
            raw.close()
        with Session() as s:
            owners = s.execute(select(RoutePoint.activity_id, RoutePoint.user_id).distinct()).all()
        assert sorted(owners) == sorted([(a, user_of(Session, a)), (b, user_of(Session, b))])
        with Session() as s:
            assert count_points(s, a) == 9 and count_points(s, b) == 8


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_migration_gives_stored_points_their_athlete_and_goes_back(kind, tmp_path):
    with database_of_its_own(kind, tmp_path, "migrate") as Session:
        engine = Session.kw["bind"]
        a = new_activity(Session, synthetic(50))
        want = _track(Session, a)
        downgrade(engine, "0020")
        with Session() as s:
            assert "user_id" not in {c["name"] for c in inspect(s.connection()).get_columns("route_points")}
        assert np.array_equal(_track(Session, a), want)
        migrate(engine)
        assert np.array_equal(_track(Session, a), want)
        with Session() as s:
            assert set(s.scalars(select(RoutePoint.user_id).where(RoutePoint.activity_id == a))) == {user_of(Session, a)}
            assert partitions.partitioned(s) == (kind == "postgres")


def test_partitions_are_made_ahead_and_stray_rows_move_into_theirs(tmp_path):
    with database_of_its_own("postgres", tmp_path, "ahead") as Session:
        assert [(r.lo, r.hi) for r in partitions.ranges(Session())] == [(0, 20_000), (20_000, 40_000)]
        _jump(Session, 40_003)
        stray = new_activity(Session, synthetic(30), days_ago=1)  # beyond every partition: the default one
        want = _track(Session, stray)
        with Session() as s:
            in_default = s.execute(text(f"SELECT count(*) FROM {partitions.DEFAULT}")).scalar()
        assert stray == 40_003 and in_default == 30
        made = partitions.ensure_ahead(Session, 1000)
        assert made == ["route_points_a40000", "route_points_a41000", "route_points_a42000"]
        with Session() as s:
            assert s.execute(text(f"SELECT count(*) FROM {partitions.DEFAULT}")).scalar() == 0
            assert s.execute(text("SELECT count(*) FROM route_points_a40000")).scalar() == 30
        assert np.array_equal(_track(Session, stray), want)
        assert partitions.ensure_ahead(Session, 1000) == []  # idempotent


ALL = {"route_points_a0", "route_points_a20000", "route_points_a40000", "route_points_a60000"}


def _two_closed_partitions(Session, n_old: int = 3):
    """Old activities in [0, 20000), none in [20000, 40000), a new one beyond: both closed."""
    old = [new_activity(Session, synthetic(40, t0=T0 + 1000 * i)) for i in range(n_old)]
    for a in old:
        _old(Session, a)
    _jump(Session, 40_000)
    recent = new_activity(Session, synthetic(40), days_ago=1)
    assert partitions.ensure_ahead(Session, 20_000) == ["route_points_a40000", "route_points_a60000"]
    return old, recent


def test_a_closed_partition_whose_activities_are_all_archived_is_emptied_whole(tmp_path, data_dir):
    with database_of_its_own("postgres", tmp_path, "empty") as Session:
        old, recent = _two_closed_partitions(Session)
        want = {a: _track(Session, a) for a in [*old, recent]}
        deleted = []
        # Rows leave with the partition's emptying, none by DELETE.
        engine = Session.kw["bind"]

        def look(conn, cursor, statement, *args):
            if statement.lstrip().upper().startswith("DELETE") and "route_points" in statement:
                deleted.append(statement)

        event.listen(engine, "before_cursor_execute", look)
        try:
            done = tiers.run(Session, load_settings())
        finally:
            event.remove(engine, "before_cursor_execute", look)
        assert (done["archived"], done["partitions_emptied"], done["failed"]) == (3, 1, 0)
        assert deleted == []
        assert _tables(Session) == ALL and _rows_in(Session, "route_points_a0") == 0
        for a in old:
            assert hot_count(Session, a) == 0
            assert np.allclose(_track(Session, a), want[a], atol=2e-3, equal_nan=True)
        assert np.array_equal(_track(Session, recent), want[recent])
        status = tiers.status(Session, load_settings())
        assert status["partitions"] == {"open": 2, "closed": 2, "warm_points": 0} and status["cold"]["activities"] == 3

        # One brought back goes back into its partition, whole.
        with Session() as s, s.begin():
            viewed = s.get(Activity, old[0])
            viewed.cold_reads, viewed.cold_read_at = 99, utcnow()  # viewed often, lately
        assert tiers.run(Session, load_settings())["restored"] == 1
        assert hot_count(Session, old[0]) == 40
        assert np.allclose(_track(Session, old[0]), want[old[0]], atol=2e-3, equal_nan=True)
        assert _rows_in(Session, "route_points_a0") == 40
        assert tiers.run(Session, load_settings())["partitions_emptied"] == 0  # just viewed: it stays


def test_a_partition_with_an_activity_not_due_is_kept_and_its_due_ones_archived_by_row(tmp_path, data_dir):
    with database_of_its_own("postgres", tmp_path, "keep") as Session:
        old, recent = _two_closed_partitions(Session)
        with Session() as s, s.begin():
            s.get(Activity, old[1]).start_time = utcnow() - timedelta(days=3)  # not old enough
        done = tiers.run(Session, load_settings())
        assert (done["archived"], done["partitions_emptied"]) == (2, 0)
        assert [hot_count(Session, a) for a in old] == [0, 40, 0]


def test_the_partition_step_killed_at_every_step_loses_nothing(tmp_path, data_dir):
    with database_of_its_own("postgres", tmp_path, "pkill") as Session:
        old, recent = _two_closed_partitions(Session, n_old=2)
        want = {a: _track(Session, a) for a in old}
        steps = []
        probe_settings = load_settings()
        # Count the steps of a whole run: archive each, then empty the partition.
        for stop in range(20):
            seen = []

            def kill(step, seen=seen, stop=stop):
                seen.append(step)
                steps.append(step)
                if len(seen) == stop + 1:
                    raise Killed(step)

            try:
                tiers.run(Session, probe_settings, checkpoint=kill)
            except Killed:
                for a in old:  # whole, whichever tier it is in
                    assert np.allclose(_track(Session, a), want[a], atol=2e-3, equal_nan=True), seen
                continue
            break
        assert "emptied" in steps
        assert _rows_in(Session, "route_points_a0") == 0
        for a in old:
            assert np.allclose(_track(Session, a), want[a], atol=2e-3, equal_nan=True)


def test_the_emptying_gives_way_to_a_busy_partition_and_happens_next_run(tmp_path, data_dir):
    with database_of_its_own("postgres", tmp_path, "busy") as Session:
        old, recent = _two_closed_partitions(Session)
        reader = Session()
        reader.begin()
        reader.scalar(select(func.count()).select_from(RoutePoint))  # holds every partition for reading
        try:
            done = tiers.run(Session, load_settings())
        finally:
            reader.rollback()
            reader.close()
        assert (done["archived"], done["partitions_emptied"], done["failed"]) == (3, 0, 0)
        assert all(hot_count(Session, a) == 40 for a in old)  # rows kept for the emptying; reads take files
        done = tiers.run(Session, load_settings())
        assert (done["archived"], done["partitions_emptied"]) == (0, 1)
        assert all(hot_count(Session, a) == 0 for a in old)


def test_a_restore_racing_the_emptying_inserts_its_rows_again(tmp_path, data_dir):
    with database_of_its_own("postgres", tmp_path, "race") as Session:
        old, recent = _two_closed_partitions(Session, n_old=1)
        (a,) = old
        want = _track(Session, a)
        tiers.archive_activity(Session, archive(), a, keep_rows=True)
        part = next(r for r in partitions.ranges(Session()) if r.lo == 0)

        def empty_midway(step):
            if step == "inserted":
                assert partitions.empty(Session, part)

        assert tiers.restore_activity(Session, archive(), a, empty_midway) == 0  # its rows went with the partition
        with Session() as s:
            assert s.get(Activity, a).points_tier == "cold"
        assert np.allclose(_track(Session, a), want, atol=2e-3, equal_nan=True)
        assert tiers.restore_activity(Session, archive(), a) == 40
        assert hot_count(Session, a) == 40
        assert np.allclose(_track(Session, a), want, atol=2e-3, equal_nan=True)


def test_a_writer_of_another_partition_is_never_failed_by_the_emptying(tmp_path, data_dir):
    """Points streamed into a new activity while a closed partition is emptied: every insert
    succeeds, and the emptying is not kept waiting."""
    with database_of_its_own("postgres", tmp_path, "writer") as Session:
        old, recent = _two_closed_partitions(Session)
        stop, errors, written = threading.Event(), [], [0]

        def write():
            seq = 1000
            while not stop.is_set():
                try:
                    with Session() as s, s.begin():
                        insert_points(s, [{"activity_id": recent, "seq": seq, "t": T0 + seq, "lat": 46.0, "lon": 14.0}])
                    seq += 1
                    written[0] += 1
                except Exception as exc:  # noqa: BLE001 - any failure is the finding
                    errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        try:
            for _ in range(5):
                tiers.run(Session, load_settings())
                if not _rows_in(Session, "route_points_a0"):
                    break
        finally:
            stop.set()
            thread.join(30)
        assert errors == []
        assert written[0] > 0 and hot_count(Session, recent) == 40 + written[0]
        assert _rows_in(Session, "route_points_a0") == 0

