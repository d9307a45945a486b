"""Building archives under concurrency: two workers at one export, a build taken over after
going quiet, an archive over 2 GiB, and two requests at the same moment."""

from __future__ import annotations

import random
import threading
import time
import zipfile
from datetime import timedelta

from sqlalchemy import event, select

from core.accounts.tables import DataExport
from core.accounts.users import create_user
from core.activities.imports import record_track
from core.config import load_settings
from core.jobs import export as export_job
from core.jobs import export_zip
from core.jobs.export import build_exports, export_folder, latest_export, request_export
from core.social.zone_attack import outing
from tests.conftest import database_of_its_own

HOME = (46.05, 14.50)


def _runner(Session, name="runner", runs=1):
    with Session() as s, s.begin():
        user = create_user(s, name, name.title())
        for k in range(runs):
            record_track(s, user, outing(random.Random(k), *HOME, time.time() - 7200 - 86400 * k), source="demo")
        return user.id


def test_two_workers_never_claim_the_same_export(tmp_path, monkeypatch):
    """Both read the waiting export first, then both try to take it: one does."""
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own("postgres", tmp_path, "claim") as Session:
        uid = _runner(Session)
        with Session() as s, s.begin():
            request_export(s, uid)
        barrier = threading.Barrier(2, timeout=20)
        waited = set()

        @event.listens_for(Session, "do_orm_execute")
        def both_read_first(state):
            name = threading.current_thread().name
            if state.is_select and "data_exports" in str(state.statement) and name.startswith("claimer") \
                    and name not in waited:
                waited.add(name)
                result = state.invoke_statement().freeze()
                barrier.wait()
                return result()

        got = []
        threads = [threading.Thread(target=lambda: got.append(export_job._claim(Session)), name=f"claimer{k}")
                   for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(got) == 2 and sum(g is not None for g in got) == 1, got


def test_a_build_gone_quiet_is_taken_over_and_the_first_one_steps_aside(tmp_path, monkeypatch):
    """A build silent for longer than STALE (simulated: another worker's clock 31 minutes on) is
    taken over; the first build, at its next step, finds its claim gone and stops without
    touching the other's file; the export ends ready, its zip whole."""
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(export_zip, "PROGRESS_EVERY", 1)
    with database_of_its_own("sqlite", tmp_path, "stale") as Session:
        uid = _runner(Session, runs=3)
        with Session() as s, s.begin():
            request_export(s, uid)
        real_write, real_now = export_job.write_export, export_job.utcnow
        state = {"second": None}

        def first_build(Session_, user_id, out, progress=None):
            def slow_progress(done, total):
                progress(done, total)
                if state["second"] is None:  # 31 minutes into this build, a second worker's round
                    monkeypatch.setattr(export_job, "utcnow", lambda: real_now() + timedelta(minutes=31))
                    monkeypatch.setattr(export_job, "write_export", real_write)
                    state["second"] = build_exports(Session, load_settings())
            return real_write(Session_, user_id, out, slow_progress)

        monkeypatch.setattr(export_job, "write_export", first_build)
        first = build_exports(Session, load_settings())
        with Session() as s:
            export = latest_export(s, uid)
        assert state["second"]["exports"]["built"] == 1 and first == {}, (state, first)
        assert export.status == "ready"
        with zipfile.ZipFile(export_folder(load_settings()) / export.file_name) as zf:
            assert zf.testzip() is None


def test_an_archive_over_2_gib_is_ready(tmp_path, monkeypatch):
    """Its size fits the row (a 64-bit integer)."""
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own("postgres", tmp_path, "big") as Session:
        uid = _runner(Session)
        with Session() as s, s.begin():
            request_export(s, uid)
        real = export_job.write_export

        def big(Session_, user_id, out, progress=None):
            counts = real(Session_, user_id, out, progress)
            out.truncate(2 ** 31 + 4096)  # sparse: as large as a big account's archive, on no disk
            return counts

        monkeypatch.setattr(export_job, "write_export", big)
        try:
            build_exports(Session, load_settings())
        finally:
            with Session() as s:
                status = latest_export(s, uid).status
            for p in export_folder(load_settings()).iterdir():
                p.unlink()
        assert status == "ready"


def test_asking_twice_at_once_queues_one_build(tmp_path, monkeypatch):
    """Two tabs click at the same moment: one archive is queued, and both get it."""
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own("postgres", tmp_path, "twice") as Session:
        uid = _runner(Session)
        barrier = threading.Barrier(2, timeout=20)
        got = []

        def ask():
            with Session() as s, s.begin():
                barrier.wait()
                got.append(request_export(s, uid).id)

        threads = [threading.Thread(target=ask) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        with Session() as s:
            rows = s.scalars(select(DataExport).where(DataExport.user_id == uid)).all()
        assert len(rows) == 1 and got == [rows[0].id] * 2, got
