"""Edges of the points' athlete column and the partitions of route_points: the ingest
connection's memory of athletes, ids SQLite gives again, a point without its athlete, the
figures of ``tiers status``, the distribution keys, ids that start high, and making
partitions while the ingest server writes. Real databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from core.accounts.users import create_user
from core.activities.lifecycle import delete_activity
from core.activities.tables import Activity
from core.config import load_settings
from core.storage import partitions, point_rows, tiers
from core.storage.base import utcnow
from core.storage.points import RoutePoint
from core.storage.points import insert_points as points_insert
from realtime.store import Store
from tests.conftest import database_of_its_own
from tests.core.storage.tiers_common import T0, hot_count, new_activity, synthetic, user_of


def _url(Session) -> str:
    return Session.kw["bind"].url.render_as_string(hide_password=False)


def _open_activity(store: Store, Session, name: str) -> tuple[int, int]:
    with Session() as s, s.begin():
        user = create_user(s, f"{name}{utcnow().timestamp():.0f}", name)
        uid = user.id
    info = store.create(uid, "run", None, None, None)
    return info.id, uid


def _owners(Session, activity_id: int) -> set[int]:
    with Session() as s:
        return set(s.scalars(select(RoutePoint.user_id).where(RoutePoint.activity_id == activity_id)))


# ---------------------------------------------------------------------------------------
# 1. The ingest connection's athlete cache: cleared, it forgets the athletes of activities
#    in the very batch it is inserting.
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_ingest_commit_survives_the_owner_cache_being_cleared(kind, tmp_path, monkeypatch):
    """FastInsert._owners clears its cache when it grows past OWNER_CACHE, then fetches only
    the activities that were missing: those of the same batch that were cached a moment
    ago now have no athlete. PostgreSQL: the COPY into staging_points breaks NOT NULL and
    the whole group commit fails (not 'busy': every device in it gets an error). SQLite:
    INSERT OR IGNORE silently skips the NULL rows (they are not stored)."""
    monkeypatch.setattr(point_rows, "OWNER_CACHE", 2)  # the real one is 100,000 activities
    with database_of_its_own(kind, tmp_path, "ocache") as Session:
        store = Store(_url(Session))
        try:
            acts = [_open_activity(store, Session, f"c{k}") for k in range(4)]
            (a, ua), (b, ub), (c, uc), (d, ud) = acts
            # Three activities seen: the cache holds 3 > OWNER_CACHE.
            first = store.commit_batches([(x, [(x, 0, T0, 46.0, 14.0)]) for x in (a, b, c)])
            assert all(not isinstance(r, Exception) for r in first), first
            # a is cached, d is new: the cache is cleared and only d fetched.
            out = store.commit_batches([(a, [(a, 1, T0 + 1, 46.0, 14.0)]), (d, [(d, 1, T0 + 1, 46.0, 14.0)])])
            assert not any(isinstance(r, Exception) for r in out), f"group commit failed: {out!r}"
            assert out == [{1}, {1}], out
            assert hot_count(Session, a) == 2 and hot_count(Session, d) == 1
            assert _owners(Session, a) == {ua} and _owners(Session, d) == {ud}
        finally:
            store.close()


# ---------------------------------------------------------------------------------------
# 2. The cache assumes an activity id always names the same athlete; SQLite reuses the
#    rowid of the newest activity once it is deleted.
# ---------------------------------------------------------------------------------------

def test_sqlite_ingest_stores_the_athlete_of_a_reused_activity_id(tmp_path):
    """SQLite's activities.id is a plain INTEGER PRIMARY KEY: deleting the newest activity
    lets the next one take its id. The ingest connection still remembers the deleted
    activity's athlete and stamps the new athlete's points with it (wrong user_id: erasure
    and Citus co-location both go by it)."""
    with database_of_its_own("sqlite", tmp_path, "reuse") as Session:
        store = Store(_url(Session))
        try:
            a, ua = _open_activity(store, Session, "alice")
            assert store.commit_batches([(a, [(a, 0, T0, 46.0, 14.0)])]) == [{0}]
            with Session() as s, s.begin():
                delete_activity(s, s.get(Activity, a))
            b, ub = _open_activity(store, Session, "bob")
            assert b == a, "SQLite reused the id (what this test is about)"
            assert ub != ua
            assert store.commit_batches([(b, [(b, 0, T0, 46.0, 14.0)])]) == [{0}]
            assert _owners(Session, b) == {ub}, f"bob's point carries user_id {_owners(Session, b)}, alice is {ua}"
        finally:
            store.close()


# ---------------------------------------------------------------------------------------
# 3. SQLite: NOT NULL DEFAULT 0 accepts any insert that forgets the athlete.
# ---------------------------------------------------------------------------------------

def test_sqlite_refuses_a_point_without_its_athlete_as_postgres_does(tmp_path):
    """The migration gives SQLite's column DEFAULT 0: an insert that does not name user_id
    (a forgotten path, a script, a future copy) stores athlete 0 silently, where PostgreSQL
    refuses it. The two engines' schemas disagree on the one thing the column is for."""
    with database_of_its_own("sqlite", tmp_path, "dflt") as Session:
        a = new_activity(Session, synthetic(3), days_ago=1)
        with Session() as s, s.begin():
            with pytest.raises(Exception):  # noqa: B017 - PostgreSQL: NotNullViolation
                s.connection().exec_driver_sql(
                    "INSERT INTO route_points (activity_id, seq, t, lat, lon) VALUES (?, 999, 1.0, 46.0, 14.0)", (a,))
        with Session() as s:
            stored = s.execute(text("SELECT user_id FROM route_points WHERE activity_id = :a AND seq = 999"),
                               {"a": a}).scalars().all()
        assert stored == [], f"stored with user_id {stored}"


# ---------------------------------------------------------------------------------------
# 4. status(): points kept for a partition's emptying count both as hot and as cold.
# ---------------------------------------------------------------------------------------

def test_status_does_not_count_archived_points_twice(tmp_path, data_dir):
    """Activities archived with keep_rows (waiting for their partition to be emptied: the
    emptying gave way to a reader, or was killed) are cold, and their points counted in
    cold.points; their rows are still in route_points, and status() counts them in
    hot.points (a count of the whole table) too."""
    with database_of_its_own("postgres", tmp_path, "status") as Session:
        old = [new_activity(Session, synthetic(40, t0=T0 + 1000 * i)) for i in range(3)]
        with Session() as s, s.begin():
            for a in old:
                s.get(Activity, a).created_at = utcnow() - timedelta(days=2)
            s.execute(text("SELECT setval('activities_id_seq', 39999)"))
        recent = new_activity(Session, synthetic(40), days_ago=1)
        partitions.ensure_ahead(Session, 20_000)
        reader = Session()
        reader.begin()
        reader.scalar(select(RoutePoint.seq).limit(1))  # a reader of the points: the emptying gives way
        try:
            done = tiers.run(Session, load_settings())
        finally:
            reader.rollback()
            reader.close()
        assert done["archived"] == 3 and done["partitions_emptied"] == 0
        st = tiers.status(Session, load_settings())
        real_hot = sum(hot_count(Session, a) for a in [recent])
        assert st["cold"]["points"] == 120
        assert st["hot"]["points"] == real_hot, (
            f"hot points {st['hot']['points']} + cold points {st['cold']['points']} for "
            f"{40 * 4} points in all")


# ---------------------------------------------------------------------------------------
# 5. The requirement: Citus can co-locate points with activities by athlete.
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_route_points_keys_carry_the_distribution_column(tmp_path, kind):
    """Citus distributes a table on a column only if every primary key, unique constraint
    and foreign key between co-located tables includes it: route_points is keyed by
    (activity_id, seq, user_id) and refers to activities by (id, user_id). The foreign key
    holds a point to its activity's athlete, so the wider key lets no point in twice."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import IntegrityError

    with database_of_its_own(kind, tmp_path, "citus") as Session:
        engine = Session.kw["bind"]
        table = inspect(engine)
        assert set(table.get_pk_constraint("route_points")["constrained_columns"]) == {"activity_id", "seq", "user_id"}
        keys = table.get_foreign_keys("route_points")
        assert [(set(k["constrained_columns"]), k["referred_table"], set(k["referred_columns"])) for k in keys] == [
            ({"activity_id", "user_id"}, "activities", {"id", "user_id"})]
        for index in table.get_indexes("route_points"):
            assert not index["unique"] or "user_id" in index["column_names"], index
        a = new_activity(Session, synthetic(5))
        with Session() as s:
            owner = s.get(Activity, a).user_id
            other = create_user(s, f"other{kind}", "Other").id
            s.commit()
        assert _owners(Session, a) == {owner}
        # A point sent again is skipped, as with the narrower key.
        with Session() as s, s.begin():
            first = s.execute(select(RoutePoint).where(RoutePoint.activity_id == a, RoutePoint.seq == 0)).scalar_one()
            again = {"activity_id": a, "seq": 0, "t": first.t + 1, "lat": 1.0, "lon": 1.0}
            assert points_insert(s, [again]) == 0
        # A point that names another athlete than its activity's is refused.
        with engine.connect() as conn:
            if kind == "sqlite":
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            with pytest.raises(IntegrityError):
                conn.execute(RoutePoint.__table__.insert().values(activity_id=a, seq=0, user_id=other, t=0.0))
            conn.rollback()
        assert hot_count(Session, a) == 5
        # Deleting the activity still takes its points with it.
        with Session() as s, s.begin():
            s.delete(s.get(Activity, a))
        assert hot_count(Session, a) == 0


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_keys_migration_gives_every_point_its_activitys_athlete(tmp_path, kind):
    """Points stored before the keys carried the athlete can name another one (an id SQLite
    gave again, remembered with its old athlete): the upgrade gives each its activity's
    athlete instead of failing on the new foreign key; on SQLite, points whose activity is
    gone (its ingest connection checks activities itself) are left behind."""
    from core.storage.schema import downgrade, migrate

    with database_of_its_own(kind, tmp_path, "keys") as Session:
        engine = Session.kw["bind"]
        a = new_activity(Session, synthetic(5))
        stranger = user_of(Session, new_activity(Session, synthetic(5)))
        downgrade(engine, "0024")
        with engine.begin() as conn:
            conn.execute(text("UPDATE route_points SET user_id = :u WHERE activity_id = :a AND seq < 2"),
                         {"u": stranger, "a": a})
        if kind == "sqlite":  # as the ingest connection writes: foreign keys off
            raw = engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA foreign_keys=OFF")
                raw.driver_connection.execute("INSERT INTO route_points (activity_id, seq, user_id, t) "
                                              "VALUES (999999, 0, ?, 0)", (stranger,))
                raw.commit()
            finally:
                raw.invalidate()
        migrate(engine)
        assert _owners(Session, a) == {user_of(Session, a)} and hot_count(Session, a) == 5
        with Session() as s:
            assert not s.scalar(select(RoutePoint.seq).where(RoutePoint.activity_id == 999999))


# ---------------------------------------------------------------------------------------
# 6. The migration makes partitions for the ids in use, not one per 20,000 from 0.
# ---------------------------------------------------------------------------------------

def test_the_migration_makes_partitions_only_for_ids_in_use(tmp_path):
    """Ids that start high (a sequence restarted, ids reserved, a merged database): the
    upgrade makes one partition for the ids in use and the ranges ahead, not one per
    20,000 ids from 0 (in one transaction, at about 7 locks each, that many would overflow
    a default server's lock table)."""
    from core.storage.schema import downgrade, migrate

    with database_of_its_own("postgres", tmp_path, "highid") as Session:
        engine = Session.kw["bind"]
        with Session() as s, s.begin():
            s.execute(text("SELECT setval('activities_id_seq', 3999999)"))
        a = new_activity(Session, synthetic(5), days_ago=1)
        assert a == 4_000_000
        downgrade(engine, "0020")  # the database as it is before the change, then upgraded
        migrate(engine)
        with Session() as s:
            made = partitions.ranges(s)
        assert len(made) <= 3, f"{len(made)} partitions, the lowest {made[0]}, for one activity"


# ---------------------------------------------------------------------------------------
# 7. Making a partition ahead holds the points table only against schema changes.
# ---------------------------------------------------------------------------------------

def test_making_a_partition_ahead_does_not_stop_ingest_into_open_partitions(tmp_path):
    """While ensure_ahead waits for an open writer of activities (the new partition's
    foreign key), the ingest server's group commit into an open partition goes on."""
    import threading
    import time as _time

    from realtime.store import DatabaseBusy

    with database_of_its_own("postgres", tmp_path, "ahead_lock") as Session:
        store = Store(_url(Session))
        try:
            with Session() as s, s.begin():
                s.execute(text("SELECT setval('activities_id_seq', 39989)"))
            live, _ = _open_activity(store, Session, "live")  # id 39,990: next partitions due
            assert store.commit_batches([(live, [(live, 0, T0, 46.0, 14.0)])]) == [{0}]
            other, _ = _open_activity(store, Session, "other")  # someone else's activity
            holder = Session()
            holder.begin()  # a writer of activities (a title edit, a status change) not yet committed
            holder.execute(text("UPDATE activities SET title = title WHERE id = :a"), {"a": other})
            made = []
            worker = threading.Thread(target=lambda: made.extend(partitions.ensure_ahead(Session, 20_000)))
            worker.start()
            try:
                for _ in range(200):  # until the worker waits for its lock
                    with Session() as s:
                        waiting = s.execute(text(
                            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                            "AND query ILIKE '%ATTACH PARTITION%'")).scalar()
                    if waiting:
                        break
                    _time.sleep(0.005)
                assert waiting, "ensure_ahead never waited (nothing to show)"
                try:
                    out = store.commit_batches([(live, [(live, 1, T0 + 1, 46.0, 14.0)])])
                except DatabaseBusy as exc:
                    pytest.fail(f"ingest into the open partition refused while a partition is made: {exc}")
                assert out == [{1}]
            finally:
                holder.rollback()
                holder.close()
                worker.join(30)
        finally:
            store.close()
