"""Storage tiers, on SQLite and PostgreSQL: a real recording's points archived to Parquet and
read back through every function of the one point-reading module; the tiering job killed at
every one of its steps, archiving and bringing back, with every read whole at each stop and
the run after it finishing the move; a crop during a move; the sweep; the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.tables import Activity
from core.config import load_settings
from core.storage import cold, tiers
from core.storage.base import utcnow
from core.storage.points import (
    RoutePoint,
    archive,
    count_points,
    delete_range,
    last_point_t,
    newest_point_times,
    note_view,
    positions,
    routes,
    stored_track,
)
from core.tracks.formats import load_track
from tests.conftest import SHARED_TRACKS, database_of_its_own, need

RIDE = "goldencheetah/Karoo-Botley_BW_Swanmore_Wickham-2025-05-09-1238.fit"  # a real ride: heart rate, cadence


class Killed(BaseException):
    """The process dying at a step: nothing after it runs, uncommitted work is lost."""


def _ride():
    need((SHARED_TRACKS / RIDE).is_file(), f"{RIDE} is not in the shared recordings")
    return load_track(RIDE, (SHARED_TRACKS / RIDE).read_bytes())


def _new_activity(Session, track, days_ago: float = 400.0) -> int:
    with Session() as s, s.begin():
        user = create_user(s, f"r{uuid.uuid4().hex[:10]}", "Rider")
        a = record_track(s, user, track, sport="ride", title="Old ride", source="demo")
        a.start_time = utcnow() - timedelta(days=days_ago)
        return a.id


def _reads(Session, activity_id: int) -> dict:
    """What every reading function gives for the activity."""
    with Session() as s:
        a = s.get(Activity, activity_id)
        track = stored_track(s, a)
        t_mid = float(np.nanmedian(track.t))
        return {"track": np.column_stack([track.t, track.lat, track.lon, track.ele, track.hr, track.cad]),
                "positions": np.array(positions(s, activity_id), dtype=float),
                "count": count_points(s, activity_id), "count_half": count_points(s, activity_id, None, t_mid),
                "last": last_point_t(s, activity_id), "route": np.column_stack(routes(s, [activity_id])[activity_id]),
                "newest": newest_point_times(s, [activity_id])[activity_id]}


def _same(got: dict, want: dict) -> None:
    """Equal at the archive's precision (1 ms, 1e-7 degree, 1 cm)."""
    for key, value in want.items():
        if isinstance(value, np.ndarray):
            assert got[key].shape == value.shape, key
            assert np.allclose(got[key], value, atol=2e-3, rtol=0, equal_nan=True), key
        elif isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=1e-3), key
        else:
            assert got[key] == value, key


def _hot_rows(Session, activity_id: int) -> int:
    with Session() as s:
        return int(s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == activity_id)))


def _file(Session, activity_id: int) -> Path:
    with Session() as s:
        a = s.get(Activity, activity_id)
        return Path(archive().path(a.user_id, a.cold_file))


def _tier(Session, activity_id: int) -> str:
    with Session() as s:
        return s.get(Activity, activity_id).points_tier


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_archived_activity_reads_as_before_and_comes_back_when_viewed_often(kind, tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("TRACKER_TIER_HOT_READS", "2")
    ride = _ride()
    with database_of_its_own(kind, tmp_path, "tiers") as Session:
        old, recent = _new_activity(Session, ride), _new_activity(Session, ride, days_ago=10)
        before = _reads(Session, old)
        assert np.isfinite(before["track"][:, 4]).any()  # heart rate travels too
        done = tiers.run(Session, load_settings())
        assert (done["archived"], done["archived_points"], done["failed"]) == (1, before["count"], 0)
        assert _tier(Session, old) == "cold" and _hot_rows(Session, old) == 0
        assert _tier(Session, recent) == "hot" and _hot_rows(Session, recent) == before["count"]
        path = _file(Session, old)
        assert path.is_file()
        _same(_reads(Session, old), before)
        status = tiers.status(Session, load_settings())
        assert status["cold"]["activities"] == 1 and status["cold"]["points"] == before["count"]
        assert 0 < status["cold"]["bytes"] < before["count"] * 8
        assert tiers.run(Session, load_settings())["archived"] == 0  # nothing more to do: idempotent

        # Page views a minute apart count (reads by jobs and bulk reads do not); two bring it
        # back, but only within the window of each other: a view after a long quiet starts again.
        note_view(Session, old)
        note_view(Session, old)
        assert tiers.run(Session, load_settings())["restored"] == 0
        with Session() as s, s.begin():
            s.get(Activity, old).cold_read_at = utcnow() - timedelta(days=31)
        note_view(Session, old)
        assert tiers.run(Session, load_settings())["restored"] == 0
        with Session() as s:
            assert s.get(Activity, old).cold_reads == 1
        with Session() as s, s.begin():
            s.get(Activity, old).cold_read_at = utcnow() - timedelta(minutes=5)
        note_view(Session, old)
        done = tiers.run(Session, load_settings())
        assert (done["restored"], done["restored_points"]) == (1, before["count"])
        assert _tier(Session, old) == "hot" and _hot_rows(Session, old) == before["count"]
        assert not path.exists()
        _same(_reads(Session, old), before)
        assert tiers.run(Session, load_settings())["archived"] == 0  # just viewed: it stays hot
        for bad in ("0", "-3", "inf"):  # a window no view fits in would keep every archived activity cold
            monkeypatch.setenv("TRACKER_TIER_HOT_WINDOW_DAYS", bad)
            with pytest.raises(ValueError, match="TRACKER_TIER_HOT_WINDOW_DAYS"):
                load_settings()
        monkeypatch.delenv("TRACKER_TIER_HOT_WINDOW_DAYS")

        # A crop of an archived activity brings it back first, then cuts.
        assert tiers.run(Session, load_settings(), older_than_days=0)["archived"] == 2
        t = before["track"][:, 0]
        with Session() as s, s.begin():
            gone = delete_range(s, old, float(t[10]), float(t[20]))
        assert gone == 11 and _tier(Session, old) == "hot" and _hot_rows(Session, old) == before["count"] - 11


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_job_killed_at_every_step_loses_nothing_and_finishes_next_time(kind, tmp_path, data_dir, monkeypatch):
    monkeypatch.setattr(tiers, "CHUNK", 1000)  # several chunks of rows to delete and to insert back
    ride = _ride()
    with database_of_its_own(kind, tmp_path, "tiers_kill") as Session:
        settings = load_settings()
        for direction in ("archive", "restore"):
            probe = _new_activity(Session, ride)
            if direction == "restore":
                tiers.run(Session, settings)
            want = _reads(Session, probe)
            steps = []
            mover = tiers.archive_activity if direction == "archive" else tiers.restore_activity
            mover(Session, archive(), probe, steps.append)
            assert len(steps) >= 5, steps
            for stop in range(len(steps)):
                activity_id = _new_activity(Session, ride)
                if direction == "restore":
                    tiers.archive_activity(Session, archive(), activity_id)
                seen = []

                def kill(step, seen=seen, stop=stop):
                    seen.append(step)
                    if len(seen) == stop + 1:
                        raise Killed(step)

                with pytest.raises(Killed):
                    mover(Session, archive(), activity_id, kill)
                _same(_reads(Session, activity_id), want)  # whole, whichever tier it is in now
                mover(Session, archive(), activity_id)  # the next run
                _same(_reads(Session, activity_id), want)
                tiers.sweep(Session, archive(), now=time.time() + 7200)  # what no activity names
                with Session() as s:
                    user_id = s.get(Activity, activity_id).user_id
                left = sorted(p.name for p in Path(archive().athlete_folder(user_id)).iterdir())
                if direction == "archive":
                    assert _tier(Session, activity_id) == "cold" and _hot_rows(Session, activity_id) == 0, seen
                    assert left == [_file(Session, activity_id).name], seen  # one file, the one in use
                else:
                    assert _tier(Session, activity_id) == "hot" and _hot_rows(Session, activity_id) == want["count"]
                    assert left == [], seen


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_crop_while_the_job_archives_keeps_the_crop(kind, tmp_path, data_dir):
    ride = _ride()
    with database_of_its_own(kind, tmp_path, "tiers_crop") as Session:
        activity_id = _new_activity(Session, ride)
        t = _reads(Session, activity_id)["track"][:, 0]

        def crop(step):
            if step == "verified":
                with Session() as s, s.begin():
                    delete_range(s, activity_id, float(t[0]), float(t[5]))

        assert tiers.archive_activity(Session, archive(), activity_id, crop) == 0
        assert _tier(Session, activity_id) == "hot" and _hot_rows(Session, activity_id) == len(t) - 6
        assert tiers.run(Session, load_settings())["archived"] == 1  # the next run archives the cropped ride
        with Session() as s:
            assert count_points(s, activity_id) == len(t) - 6


def test_the_sweep_takes_only_files_no_activity_needs(tmp_path, data_dir):
    ride = _ride()
    with database_of_its_own("sqlite", tmp_path, "tiers_sweep") as Session:
        kept = _new_activity(Session, ride)
        tiers.run(Session, load_settings())
        store = archive()
        rows = np.array([[1, 1.6e9, 46.0, 14.0, np.nan, np.nan, np.nan, np.nan]])
        cold.write(store, 999, cold.new_name(424242), rows)  # an activity deleted since
        assert tiers.sweep(Session, store) == 0  # written just now: it may be being archived
        assert tiers.sweep(Session, store, now=time.time() + 7200) == 1
        path = _file(Session, kept)
        assert path.is_file()
        path.write_bytes(b"PAR1 broken")
        with pytest.raises(cold.ArchiveFileError), Session() as s:
            stored_track(s, s.get(Activity, kept))
        with Session() as s:
            assert routes(s, [kept]) == {}  # a bulk read leaves it out, and serves the others


def test_deleting_an_account_deletes_its_archived_points(tmp_path, data_dir):
    from core.jobs.deletion import delete_account

    with database_of_its_own("sqlite", tmp_path, "tiers_delete") as Session:
        activity_id = _new_activity(Session, _ride())
        tiers.run(Session, load_settings())
        with Session() as s:
            user_id = s.get(Activity, activity_id).user_id
        folder = Path(archive().athlete_folder(user_id))
        assert folder.is_dir()
        delete_account(Session, user_id, settle_s=0.0)
        assert not folder.exists()


def test_the_command_line_runs_and_reports_the_tiers(tmp_path, data_dir):
    from core.storage.engine import make_engine, make_sessionmaker
    from core.storage.schema import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    migrate(engine)
    Session = make_sessionmaker(engine)
    activity_id = _new_activity(Session, _ride(), days_ago=30)
    env = dict(os.environ, TRACKER_DATABASE_URL=str(engine.url), TRACKER_DATA_DIR=str(data_dir))
    root = Path(__file__).resolve().parents[3]

    def core(*args):
        return subprocess.run([sys.executable, "-m", "core", "tiers", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=300)

    out = core("run")
    assert out.returncode == 0 and json.loads(out.stdout)["archived"] == 0  # 30 days is not old yet
    out = core("run", "--older-than", "7")
    assert out.returncode == 0 and json.loads(out.stdout)["archived"] == 1, out.stderr
    status = json.loads(core("status").stdout)
    assert status["cold"]["activities"] == 1 and status["hot"]["points"] == 0 and status["cold"]["bytes"] > 0
    assert core("run", "--older-than", "-1").returncode == 2
    with Session() as s:
        assert count_points(s, activity_id) == status["cold"]["points"]
    engine.dispose()


def test_an_archive_named_by_url_works_as_a_folder_does(tmp_path, data_dir, monkeypatch):
    """``TRACKER_ARCHIVE_URL`` as a URL (here ``file://``; ``s3://`` and the other filesystems
    pyarrow knows go the same way): the job archives into it, every read and the status go
    through it, an often-read activity comes back from it, and deleting the account empties
    the athlete's folder there."""
    from core.jobs.deletion import delete_account

    where = tmp_path / "remote" / "tracker-archive"
    where.mkdir(parents=True)
    monkeypatch.setenv("TRACKER_ARCHIVE_URL", where.as_uri())
    settings = load_settings()
    store = cold.open_archive(settings)
    assert store.url == where.as_uri() and store.path(1, "x.parquet").startswith(str(where))
    with database_of_its_own("sqlite", tmp_path, "tiers_url") as Session:
        activity_id = _new_activity(Session, _ride())
        before = _reads(Session, activity_id)
        assert tiers.run(Session, settings)["archived"] == 1
        assert _tier(Session, activity_id) == "cold" and _hot_rows(Session, activity_id) == 0
        with Session() as s:
            a = s.get(Activity, activity_id)
            user_id, name = a.user_id, a.cold_file
        assert (where / Path(store.path(user_id, name)).relative_to(where)).is_file()
        _same(_reads(Session, activity_id), before)
        status = tiers.status(Session, settings)
        assert status["archive"] == where.as_uri() and status["cold"]["files"] == 1 and status["cold"]["bytes"] > 0
        assert tiers.restore_activity(Session, store, activity_id) == before["count"]
        assert _tier(Session, activity_id) == "hot"
        _same(_reads(Session, activity_id), before)
        assert tiers.archive_activity(Session, store, activity_id) == before["count"]
        assert list(where.rglob("*.parquet"))
        delete_account(Session, user_id, settle_s=0.0)
        assert not Path(store.athlete_folder(user_id)).exists() and list(where.rglob("*.parquet")) == []
