"""``make run`` as a new user starts it, on the embedded default (a fresh SQLite file, no
Redis): while the worker trains its model and scores the demo's backlog, the simulated
athletes stay on alice's Live page for minutes, and the ingest server never fails a commit."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from core.accounts.users import user_by_name
from core.storage.engine import make_engine
from dashboard.queries import live_activities
from tests.realtime.test_crash import free_port

ROOT = Path(__file__).resolve().parents[1]
WATCH_S = 180.0  # how long the Live page is watched once the athletes appear
SIM_DEVICES = 3
SIM_PHONES = 1  # a phone app sending to the HTTP service


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until(check, seconds: float, proc: subprocess.Popen, log: Path, failure: str) -> None:
    """Poll ``check`` once a second until it holds; fail with ``failure`` after ``seconds``
    or as soon as ``make run`` exits."""
    for _ in range(int(seconds)):
        if proc.poll() is not None:
            pytest.fail(f"make run exited: {log.read_text()[-3000:]}")
        if check():
            return
        time.sleep(1)
    pytest.fail(failure)


@pytest.mark.timeout(1200)
def test_make_run_keeps_live_athletes_on_the_live_page(tmp_path):
    """Every 10 s for three minutes, alice's Live page lists simulated athletes recording
    now, the one with a phone app (through the HTTP service) among them; the ingest server logs no failed commit or internal error, and the worker scores
    the demo's activities meanwhile."""
    db = tmp_path / "tracker.db"
    ingest_port, dashboard_port, http_port = free_port(), free_port(), free_port()
    env = dict(os.environ, TRACKER_DATABASE_URL=f"sqlite:///{db}", TRACKER_DATA_DIR=str(tmp_path))
    env.pop("TRACKER_REDIS_URL", None)
    log = tmp_path / "make-run.log"
    proc = subprocess.Popen(["make", "run", f"INGEST_PORT={ingest_port}", f"DASHBOARD_PORT={dashboard_port}",
                             f"HTTP_PORT={http_port}", f"SIM_DEVICES={SIM_DEVICES}",
                             f"SIM_PHONES={SIM_PHONES}"], cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    samples: list[int] = []
    try:
        wait_until(lambda: healthy(f"http://127.0.0.1:{ingest_port}/healthz"), 600, proc, log,
                   "the ingest server did not start")  # the demo load comes first
        engine = make_engine(f"sqlite:///{db}")

        def live_now() -> int:
            with Session(engine) as s:
                return len(live_activities(s, user_by_name(s, "alice").id))

        wait_until(lambda: live_now() > 0, 60, proc, log, "no simulated athlete appeared on the Live page")
        assert healthy(f"http://127.0.0.1:{dashboard_port}/_stcore/health")
        wait_until(lambda: healthy(f"http://127.0.0.1:{http_port}/healthz"), 60, proc, log,
                   "the HTTP service did not start")
        end = time.time() + WATCH_S
        while time.time() < end:
            assert proc.poll() is None, log.read_text()[-3000:]
            samples.append(live_now())
            time.sleep(10)
        engine.dispose()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    output = log.read_text()
    assert "commit failed" not in output and '"internal error"' not in output, output[-3000:]
    assert "gave up" not in output and "Traceback" not in output, output[-3000:]
    assert "jobs done" in output and '"scored"' in output  # the worker did score meanwhile
    assert samples and min(samples) >= 1, samples
    assert max(samples) == SIM_DEVICES + SIM_PHONES, samples
