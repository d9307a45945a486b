"""The worker's Prometheus metrics: a real worker process, its metrics port scraped while it
runs its rounds: rounds counted, each job timed, write transactions observed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.realtime.test_crash import free_port

ROOT = Path(__file__).resolve().parents[3]


def scrape(port: int) -> dict[tuple, float] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_running_worker_serves_its_rounds_jobs_and_write_transactions(tmp_path):
    port = free_port()
    env = dict(os.environ, TRACKER_DATA_DIR=str(tmp_path), TRACKER_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}",
               TRACKER_WORKER_METRICS_PORT=str(port))
    env.pop("TRACKER_REDIS_URL", None)
    worker = subprocess.Popen([sys.executable, "-m", "core", "worker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        samples = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and worker.poll() is None:
            samples = scrape(port)
            if samples and samples.get(("tracker_worker_rounds_total", ()), 0) >= 1:
                break
            time.sleep(0.5)
        assert worker.poll() is None, worker.stderr.read()
        assert samples and samples[("tracker_worker_rounds_total", ())] >= 1
        for job in ("model", "devices", "scoring", "routes", "badges", "tiers", "housekeeping", "leaderboards"):
            assert samples[("tracker_worker_job_seconds_count", (("task", job),))] >= 1, job
        assert samples[("tracker_worker_round_failures_total", ())] == 0
        assert samples[("tracker_worker_scoring_given_up", ())] == 0
        assert samples[("tracker_worker_recompute_given_up", ())] == 0
        locks = [v for (name, labels), v in samples.items() if name == "tracker_worker_write_lock_seconds_count"]
        assert sum(locks) >= 1  # housekeeping and the model's training write
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
