"""Each scheduled job group runs in one worker at a time (``core.jobs.locks``): the locks
themselves on SQLite (a file lock per group) and PostgreSQL (advisory locks), a holder
killed with SIGKILL handing its groups over, and two real worker processes on one database
splitting the groups between them, with the survivor taking over the dead one's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from core.jobs.locks import JobLocks, advisory_key
from core.jobs.worker import GROUPS
from core.storage.engine import make_engine
from tests.conftest import database_of_its_own
from tests.core.jobs.test_worker_metrics import scrape
from tests.realtime.test_crash import free_port

ROOT = Path(__file__).resolve().parents[3]

HOLD = """
import sys, time
from core.jobs.locks import JobLocks
from core.storage.engine import make_engine
locks = JobLocks(make_engine(sys.argv[1]))
print(locks.mine(sys.argv[2]), flush=True)
time.sleep(600)
"""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request, tmp_path):
    with database_of_its_own(request.param, tmp_path, "locks") as Session:
        yield Session.kw["bind"].url.render_as_string(hide_password=False)


def test_the_key_is_the_same_in_every_process():
    assert advisory_key("tiers") == advisory_key("tiers") != advisory_key("housekeeping")
    out = subprocess.run([sys.executable, "-c", "from core.jobs.locks import advisory_key; print(advisory_key('tiers'))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONHASHSEED="7"))
    assert int(out.stdout) == advisory_key("tiers")


def test_one_holder_per_group_until_it_lets_go(url):
    a, b = JobLocks(make_engine(url)), JobLocks(make_engine(url))
    try:
        assert a.mine("tiers") and a.mine("tiers")  # taken, then held
        assert not b.mine("tiers")
        assert b.mine("housekeeping") and not a.mine("housekeeping")
        a.close()
        assert b.mine("tiers") and b.held == {"tiers", "housekeeping"}
    finally:
        a.close()
        b.close()


def test_a_lock_file_that_cannot_be_opened_leaves_the_group_to_others(tmp_path):
    """A folder where the lock file should be (or a read-only data folder): the worker does
    not run the group, and says why, instead of failing its whole round."""
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    locks = JobLocks(engine)
    try:
        locks.lock_path("tiers").mkdir()
        assert not locks.mine("tiers") and locks.held == set()
        assert locks.mine("housekeeping")
    finally:
        locks.close()
        engine.dispose()


def test_a_killed_holder_hands_its_group_over(url):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url, "tiers"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(ROOT)))
    other = JobLocks(make_engine(url))
    try:
        assert holder.stdout.readline().strip() == "True"
        assert not other.mine("tiers")
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
        deadline = time.monotonic() + 60  # PostgreSQL notices the closed connection at once
        while not other.mine("tiers"):
            assert time.monotonic() < deadline, "the killed holder's lock was never released"
            time.sleep(0.2)
    finally:
        holder.kill()
        holder.wait(30)
        other.close()


def test_a_lost_postgres_session_is_noticed_and_the_lock_taken_again(tmp_path):
    with database_of_its_own("postgres", tmp_path, "locks") as Session:
        engine = Session.kw["bind"]
        locks = JobLocks(engine)
        try:
            assert locks.mine("tiers")
            pid = locks._conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid})
            assert locks.mine("tiers")  # on a new session
            rival = JobLocks(make_engine(engine.url.render_as_string(hide_password=False)))
            assert not rival.mine("tiers")
            rival.close()
        finally:
            locks.close()


def held(port: int) -> dict[str, float] | None:
    samples = scrape(port)
    if samples is None:
        return None
    return {dict(labels)["task"]: v for (name, labels), v in samples.items() if name == "tracker_worker_job_held"}


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_two_workers_split_the_groups_and_one_takes_over_when_the_other_is_killed(kind, tmp_path):
    with database_of_its_own(kind, tmp_path, "workers") as Session:
        url = Session.kw["bind"].url.render_as_string(hide_password=False)
        ports = [free_port(), free_port()]
        procs = []
        for port in ports:
            env = dict(os.environ, TRACKER_DATA_DIR=str(tmp_path), TRACKER_DATABASE_URL=url,
                       TRACKER_WORKER_METRICS_PORT=str(port), PYTHONPATH=str(ROOT))
            env.pop("TRACKER_REDIS_URL", None)
            procs.append(subprocess.Popen([sys.executable, "-m", "core", "worker"], cwd=ROOT, env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        try:
            def seen() -> list[dict[str, float]] | None:
                found = [held(p) for p in ports]
                return found if all(f is not None and set(GROUPS) <= set(f) for f in found) else None

            deadline = time.monotonic() + 300
            both = None
            while time.monotonic() < deadline and all(p.poll() is None for p in procs):
                both = seen()
                if both:
                    break
                time.sleep(0.5)
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs if p.poll() is not None]
            assert both, "the workers never reported every group"
            for group in GROUPS:  # each group in exactly one of them
                assert both[0][group] + both[1][group] == 1, (group, both)
            victim = 0 if both[0]["activities"] == 1 else 1
            survivor = 1 - victim
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(30)
            deadline = time.monotonic() + 300  # the survivor's next turn at each group
            while time.monotonic() < deadline and procs[survivor].poll() is None:
                if (held(ports[survivor]) or {}).get("activities") == 1:
                    break
                time.sleep(0.5)
            assert procs[survivor].poll() is None, procs[survivor].stderr.read()
            assert held(ports[survivor])["activities"] == 1
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
