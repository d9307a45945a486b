"""Storage tiers: points written into and read from archived activities, what a read costs,
values the archive cannot hold, precision, and the migration's downgrade."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import event, update

from core.activities.tables import Activity
from core.config import load_settings
from core.storage import tiers
from core.storage.base import utcnow
from core.storage.points import archive, count_points, routes, stored_track
from tests.conftest import database_of_its_own
from tests.core.storage.tiers_common import hot_count, new_activity, synthetic, user_of  # noqa: F401

IDLE = 600.0


def _device_activity(Session, motion=None):
    """A phone's 40 fixes, 400 days ago, completed; (device, activity id, fixes' last time)."""
    import uuid

    from core.accounts.tokens import create_device_token
    from core.accounts.users import create_user
    from core.devices.fixes import Device, Fix, store_fixes
    from core.jobs.devices import complete_quiet

    t0 = time.time() - 400 * 86400
    with Session() as s, s.begin():
        user = create_user(s, f"p{uuid.uuid4().hex[:8]}")
        token, _ = create_device_token(s, user, name="phone", sport="run")
        device = Device(token.id, user.id, "run")
    fixes = [Fix(t0 + i * 5, 45.0 + i * 1e-4, 7.0, motion=motion) for i in range(40)]
    out = store_fixes(Session, [(device, f) for f in fixes], now=t0 + 200, idle_s=IDLE)
    complete_quiet(Session, IDLE, now=t0 + 40 * 5 + IDLE + 5)
    return device, out[0].activity_id, t0 + 39 * 5


def test_a_late_fix_for_an_archived_activity_brings_it_back_and_is_read(tmp_path, data_dir):
    """A phone's late fix for an archived activity brings it back to the table first: the fix is
    stored with its points and the recomputed figures count it."""
    from core.devices.fixes import Fix, store_fixes
    from core.jobs.devices import recompute_late

    with database_of_its_own("sqlite", tmp_path, "rv_late") as Session:
        device, x, last = _device_activity(Session)
        with Session() as s:
            assert s.get(Activity, x).status == "completed"
        assert tiers.archive_activity(Session, archive(), x) == 40
        out = store_fixes(Session, [(device, Fix(last + 5, 45.0041, 7.0))], now=last + 60, idle_s=IDLE)
        assert out[0].activity_id == x and out[0].new  # accepted, acknowledged as stored
        recompute_late(Session, None, 0.7)
        with Session() as s:
            assert count_points(s, x) == 41, "the late fix is in route_points but reads take only the file"
            assert s.get(Activity, x).point_count == 41


def test_a_late_fix_brings_an_archived_activity_back_before_its_own_transaction(tmp_path, data_dir, monkeypatch):
    """The points of an archived activity a late fix lands in come back in short transactions
    of their own, before the fixes' transaction: that one inserts the fix alone, so it holds
    SQLite's write lock no longer for an archived activity than for any other."""
    import core.devices.fixes as fixes
    import core.storage.point_tiers as point_tiers
    from core.devices.fixes import Fix, store_fixes

    inside = []
    make_hot = point_tiers.make_hot
    monkeypatch.setattr(point_tiers, "make_hot", lambda s, a: (inside.append(a), make_hot(s, a))[1])
    with database_of_its_own("sqlite", tmp_path, "rv_short") as Session:
        device, x, last = _device_activity(Session)
        assert tiers.archive_activity(Session, archive(), x) == 40
        out = store_fixes(Session, [(device, Fix(last + 5, 45.0041, 7.0))], now=last + 60, idle_s=IDLE)
        assert out[0].activity_id == x and out[0].new
        assert inside == [], "the archived points went back inside the fixes' transaction"
        with Session() as s:
            assert s.get(Activity, x).points_tier == "hot" and count_points(s, x) == 41

        # Archived again every time it is brought back (a tiering run in between): after the
        # tries, the write brings it back itself, and nothing is lost.
        assert tiers.archive_activity(Session, archive(), x) == 41
        monkeypatch.setattr(fixes, "restore_activity", lambda *a, **k: 0)
        out = store_fixes(Session, [(device, Fix(last + 10, 45.0042, 7.0))], now=last + 60, idle_s=IDLE)
        assert out[0].activity_id == x and out[0].new
        assert inside == [x]
        with Session() as s:
            assert s.get(Activity, x).points_tier == "hot" and count_points(s, x) == 42


def test_a_resent_fix_of_an_archived_activity_is_a_duplicate(tmp_path, data_dir):
    """A fix resent for an archived activity is known as stored already."""
    from core.devices.fixes import Fix, store_fixes

    with database_of_its_own("sqlite", tmp_path, "rv_dup") as Session:
        device, x, last = _device_activity(Session)
        assert tiers.archive_activity(Session, archive(), x) == 40
        out = store_fixes(Session, [(device, Fix(last, 45.0 + 39e-4, 7.0))], now=last + 60, idle_s=IDLE)
        assert not out[0].new, "deduplication by (activity, seq) no longer sees the archived points"


def test_recomputing_an_archived_activity_writes_nothing_beside_its_transaction(tmp_path, data_dir, monkeypatch):
    """Recomputing an archived activity inside a write transaction reads its file and opens no
    second write on SQLite (which would wait behind the first)."""
    import core.storage.engine as engine_mod
    from core.devices.fixes import Fix, store_fixes
    from core.jobs.devices import recompute_late

    monkeypatch.setattr(engine_mod, "SQLITE_BUSY_TIMEOUT_MS", 2000)
    with database_of_its_own("sqlite", tmp_path, "rv_stall") as Session:
        device, x, last = _device_activity(Session)
        assert tiers.archive_activity(Session, archive(), x) == 40
        store_fixes(Session, [(device, Fix(last + 5, 45.0041, 7.0))], now=last + 60, idle_s=IDLE)
        writers = set()

        def note(conn, cursor, statement, *args):
            if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "BEGIN"):
                writers.add(id(conn.connection.driver_connection))

        bind = Session.kw["bind"]
        event.listen(bind, "before_cursor_execute", note)
        try:
            recompute_late(Session, None, 0.7)
        finally:
            event.remove(bind, "before_cursor_execute", note)
        assert len(writers) == 1, "a second connection wrote while the recompute held the write lock"


def test_phone_hints_of_an_archived_activity_still_reach_scoring(tmp_path, data_dir):
    """A phone's motion hints are matched to an archived activity's points read from its file."""
    from core.devices.hints import stored_hints

    with database_of_its_own("sqlite", tmp_path, "rv_hints") as Session:
        _device, x, _last = _device_activity(Session, motion="in_vehicle")
        with Session() as s:
            assert len(stored_hints(s, x)) == 40
        assert tiers.archive_activity(Session, archive(), x) == 40
        with Session() as s:
            hints = stored_hints(s, x)
            assert hints is not None and len(hints) == 40


def _updates(engine):
    seen = []

    @event.listens_for(engine, "before_cursor_execute")
    def spy(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ACTIVITIES") and "cold_reads=" in statement:
            seen.append(statement)

    return seen


def test_reading_an_archived_activity_writes_nothing(tmp_path, data_dir):
    """Reads of an archived activity (map, chart, splits) write nothing: only page views count."""
    with database_of_its_own("sqlite", tmp_path, "rv_rw") as Session:
        x = new_activity(Session, synthetic(300))
        tiers.archive_activity(Session, archive(), x)
        seen = _updates(Session.kw["bind"])
        with Session() as s:
            a = s.get(Activity, x)
            for _ in range(4):
                stored_track(s, a)
        assert len(seen) <= 1, f"{len(seen)} UPDATE statements for one page's reads"


def test_a_heatmap_over_archived_activities_writes_nothing_and_brings_nothing_back(tmp_path, data_dir):
    """A bulk read (the stats heatmap) of archived activities writes nothing and brings none back."""
    with database_of_its_own("sqlite", tmp_path, "rv_heat") as Session:
        first = new_activity(Session, synthetic(300))
        ids = [first] + [new_activity(Session, synthetic(300), user_id=user_of(Session, first)) for _ in range(5)]
        tiers.run(Session, load_settings())
        seen = _updates(Session.kw["bind"])
        for _ in range(3):
            with Session() as s, s.begin():
                s.execute(update(Activity).values(cold_read_at=utcnow() - timedelta(minutes=5)))
            with Session() as s:
                assert len(routes(s, ids)) == 6
        with Session() as s:
            _archive, back = tiers.due(s, load_settings())
        assert back == [], f"three heatmap views bring all {len(back)} archived activities back to hot"
        assert len(seen) <= 3, f"{len(seen)} UPDATEs for three heatmap views of 6 activities"


def test_an_activity_that_cannot_be_archived_does_not_hold_back_the_others(tmp_path, data_dir):
    """An activity whose values the archive cannot hold fails alone: it stays in the table,
    counted as failed, and the activities behind it are archived."""
    from core.devices.fixes import Fix, check_fix

    assert check_fix(Fix(time.time() - 10, 45.0, 7.0, acc=3e7)).acc == 3e7
    with database_of_its_own("sqlite", tmp_path, "rv_block") as Session:
        new_activity(Session, synthetic(300, acc=3e7), days_ago=500)
        fine = new_activity(Session, synthetic(300), days_ago=400)
        for _ in range(3):  # three hourly runs, with BATCH 1 standing for 200 such activities
            tiers.run(Session, load_settings(), limit=1)
        with Session() as s:
            assert s.get(Activity, fine).points_tier == "cold"


def test_heart_rate_keeps_its_tenths_through_the_archive(tmp_path, data_dir):
    """Heart rate and cadence keep their tenths through archiving and back."""
    from core.activities.summary import summarise_activity

    with database_of_its_own("sqlite", tmp_path, "rv_hr") as Session:
        x = new_activity(Session, synthetic(300, hr=140.4))
        with Session() as s:
            before = summarise_activity(s, s.get(Activity, x))
        tiers.archive_activity(Session, archive(), x)
        with Session() as s:
            after = summarise_activity(s, s.get(Activity, x))
        assert after.avg_hr_bpm == pytest.approx(before.avg_hr_bpm, abs=1e-6)


def test_downgrading_past_0020_is_refused_while_activities_are_archived(tmp_path, data_dir):
    """Downgrading past the tiers' migration is refused while points are in the archive."""
    from core.storage.schema import downgrade

    with database_of_its_own("sqlite", tmp_path, "rv_down") as Session:
        x = new_activity(Session, synthetic(300))
        tiers.archive_activity(Session, archive(), x)
        engine = Session.kw["bind"]
        try:
            downgrade(engine, "0019")
        except Exception:  # noqa: BLE001 - refusing is the right answer
            return
        assert hot_count(Session, x) == 300, "points of archived activities are gone after the downgrade"


def test_a_real_fit_ride_recomputed_from_its_archive_keeps_its_figures(tmp_path, data_dir):
    """Positions kept to 1e-8 degree (finer than FIT's semicircles), elevation to the
    millimetre: a recompute gives the same distance and times; the elevation gain may move by
    a step of the device's own resolution (0.2 m) where a float's last digits decided the
    climb threshold (43.799999999999955 is stored as the 43.8 the device meant)."""
    from core.activities.summary import summarise_activity
    from core.tracks.formats import load_track
    from tests.conftest import SHARED_TRACKS, need

    name = "goldencheetah/Karoo-Botley_BW_Swanmore_Wickham-2025-05-09-1238.fit"
    need((SHARED_TRACKS / name).is_file(), "shared ride missing")
    with database_of_its_own("sqlite", tmp_path, "rv_fit") as Session:
        x = new_activity(Session, load_track(name, (SHARED_TRACKS / name).read_bytes()))
        with Session() as s:
            before = summarise_activity(s, s.get(Activity, x))
        tiers.archive_activity(Session, archive(), x)
        with Session() as s:
            after = summarise_activity(s, s.get(Activity, x))
        assert after.distance_m == pytest.approx(before.distance_m, abs=0.01)
        assert (after.moving_time_s, after.elapsed_time_s) == (before.moving_time_s, before.elapsed_time_s)
        assert abs(after.elevation_gain_m - before.elevation_gain_m) <= 0.2 + 1e-9
        assert after.best_efforts_s.keys() == before.best_efforts_s.keys()
        for k, v in before.best_efforts_s.items():
            assert after.best_efforts_s[k] == pytest.approx(v, abs=1.0), k


def test_only_the_activities_named_are_brought_back_inside_the_fixes_transaction(tmp_path, data_dir):
    """``write_inside`` names the archived activities a caller lets the fixes' transaction
    bring back (archived again every time they came back); any other archived activity in
    the batch is still left to the caller (``ArchivedActivities``), nothing written."""
    import pytest

    from core.devices.fixes import ArchivedActivities, Fix, store_fixes

    with database_of_its_own("sqlite", tmp_path, "rv_inside") as Session:
        one, x, last_x = _device_activity(Session)
        other, y, last_y = _device_activity(Session)
        for activity_id in (x, y):
            assert tiers.archive_activity(Session, archive(), activity_id) == 40
        both = [(one, Fix(last_x + 5, 45.0041, 7.0)), (other, Fix(last_y + 5, 45.0041, 7.0))]
        with pytest.raises(ArchivedActivities) as found:
            store_fixes(Session, both, now=last_y + 60, idle_s=IDLE, restore=False, write_inside=frozenset({x}))
        assert found.value.placed == {1: y}
        with Session() as s:
            assert s.get(Activity, x).points_tier == "cold"  # rolled back with the rest
        out = store_fixes(Session, both[:1], now=last_x + 60, idle_s=IDLE, restore=False, write_inside=frozenset({x}))
        assert out[0].activity_id == x and out[0].new
        with Session() as s:
            assert s.get(Activity, x).points_tier == "hot" and count_points(s, x) == 41
            assert s.get(Activity, y).points_tier == "cold"
