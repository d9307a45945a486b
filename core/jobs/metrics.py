"""The worker's metrics, for Prometheus: how long each job of a round takes, rounds that
failed, how long jobs hold write transactions (SQLite's write lock; on PostgreSQL the
transaction's length), activities scored, exports built, which job groups this worker runs
and how often it left one to another (``core.jobs.locks``). Served on
``TRACKER_WORKER_METRICS_PORT`` when it is set (``docs/monitoring.md``). The job is the label ``task``: Prometheus keeps ``job`` for the
scrape job's name."""

from __future__ import annotations

import time
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from core.storage.engine import WRITE_LOCKS


class MetricsPortError(RuntimeError):
    """The metrics cannot be served on the port asked for (taken, or not ours to open)."""


JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
LOCK_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)


class WorkerMetrics:
    """The metrics of one worker process."""

    def __init__(self, write_locks: bool = False) -> None:
        """With ``write_locks``, every write transaction of the process is observed (one
        worker process has one such: ``close`` stops it)."""
        r = self.registry = CollectorRegistry()
        self.job_seconds = Histogram("tracker_worker_job_seconds", "Duration of each job in a round", ["task"],
                                     buckets=JOB_BUCKETS, registry=r)
        self.rounds = Counter("tracker_worker_rounds", "Rounds of jobs run", registry=r)
        self.round_failures = Counter("tracker_worker_round_failures", "Rounds that failed (logged, tried again)",
                                      registry=r)
        self.write_lock_seconds = Histogram("tracker_worker_write_lock_seconds",
                                            "How long a job held a write transaction", ["task"],
                                            buckets=LOCK_BUCKETS, registry=r)
        self.write_lock_wait_seconds = Histogram("tracker_worker_write_lock_wait_seconds",
                                                 "How long a job waited for a write transaction", ["task"],
                                                 buckets=LOCK_BUCKETS, registry=r)
        self.scored = Counter("tracker_worker_scored_activities", "Activities scored for anomalies", registry=r)
        self.exports = Counter("tracker_worker_exports", "Data exports built", registry=r)
        self.stream_lag = Gauge("tracker_worker_stream_lag",
                                "Scoring stream entries not yet read or not yet acknowledged (with Redis)", registry=r)
        self.given_up = Gauge("tracker_worker_scoring_given_up",
                              "Completed activities scoring gave up on, left for a moderator (core.anomaly.failures)",
                              registry=r)
        self.recompute_given_up = Gauge(
            "tracker_worker_recompute_given_up",
            "Completed activities whose recomputation after a late fix was given up on (core.jobs.devices)",
            registry=r)
        self.held = Gauge("tracker_worker_job_held", "1 while this worker runs the job group (holds its lock)",
                          ["task"], registry=r)
        self.skipped = Counter("tracker_worker_jobs_skipped", "Turns of a job group left to the worker holding its lock",
                               ["task"], registry=r)
        if write_locks:
            WRITE_LOCKS.observers.append(self._write_lock)

    def _write_lock(self, job: str, ms: float, wait_ms: float) -> None:
        self.write_lock_seconds.labels(job).observe(ms / 1000)
        self.write_lock_wait_seconds.labels(job).observe(wait_ms / 1000)

    @contextmanager
    def timed(self, job: str):
        began = time.perf_counter()
        try:
            yield
        finally:
            self.job_seconds.labels(job).observe(time.perf_counter() - began)

    def close(self) -> None:
        """Stop feeding on the write transactions (a worker that ends)."""
        if self._write_lock in WRITE_LOCKS.observers:
            WRITE_LOCKS.observers.remove(self._write_lock)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, port: int, host: str = "127.0.0.1"):
        """Serve the metrics over HTTP on ``port`` (a thread of its own); the server.
        ``MetricsPortError`` says why when the port cannot be opened."""
        if not 1 <= port <= 65535:
            raise MetricsPortError(f"cannot serve the worker's metrics on port {port}: a port is 1 to 65535")
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise MetricsPortError(f"cannot serve the worker's metrics on {host}:{port}: "
                                   f"{exc.strerror or exc}") from None
        return server
