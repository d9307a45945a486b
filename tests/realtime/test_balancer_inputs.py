"""The scale-out layer's bad inputs and bad neighbours: a health check answered by something
that is not HTTP is a failed check (not the cluster's end), the balancer's ports are checked
before anything starts, its statistics stay on this machine unless told, and a Redis URL the
client refuses stops the live publisher with an error at once."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from realtime import balancer, health
from realtime.live_state import LiveState
from realtime.server import publisher_ended

ROOT = Path(__file__).resolve().parents[2]

NOT_HTTP = [
    pytest.param(b"SSH-2.0-OpenSSH_9.2\r\n", id="ssh banner"),
    pytest.param(b"HTTP/1.1 200 " + b"x" * 70000 + b"\r\n\r\n", id="over-long status line"),
    pytest.param(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 200 + b"\r\n", id="too many headers"),
    pytest.param(b"", id="closed at once"),
]


def answering(payload: bytes) -> int:
    """A port that answers every connection with ``payload`` and closes it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def loop() -> None:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(payload)

    threading.Thread(target=loop, daemon=True).start()
    return server.getsockname()[1]


@pytest.mark.parametrize("payload", NOT_HTTP)
def test_an_answer_that_is_not_http_is_unhealthy(payload):
    assert health.healthy(f"http://127.0.0.1:{answering(payload)}/healthz") is False


def test_a_malformed_url_is_unhealthy_not_an_error():
    assert health.healthy("notaurl") is False


def test_the_supervisor_carries_on_when_a_backend_port_answers_something_else():
    """A port taken by something that is not an ingest process: its check fails like any
    other, and nothing is raised to stop the cluster."""
    port = answering(b"SSH-2.0-OpenSSH_9.2\r\n")
    cluster = balancer.Cluster([port], "127.0.0.1", 1, 2, [])
    proc = cluster.ingest[0] = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        cluster.watch_once()
        assert cluster.answered_at[0] == 0.0  # not counted as an answer
    finally:
        proc.kill()
        proc.wait()
        cluster.stop()


def run_health(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "realtime.health", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("url, reason", [
    ("notaurl", "must start with http:// or https://"),
    ("http://127.0.0.1:99999/healthz", "out of range"),
    ("http:///healthz", "names no host"),
    ("http://127.0.0.1:0/healthz", "port 0"),
])
def test_health_refuses_a_url_it_cannot_check_in_one_line(url, reason):
    done = run_health("--url", url)
    assert done.returncode == 2 and reason in done.stderr
    assert "Traceback" not in done.stderr


def test_health_stops_waiting_when_the_servers_process_has_exited():
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    began = time.monotonic()
    done = run_health("--url", "http://127.0.0.1:1/healthz", "--wait", "60", "--pid", str(gone.pid))
    assert done.returncode == 1 and "has exited" in done.stderr
    assert time.monotonic() - began < 20


def run_balancer(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = dict(env if env is not None else os.environ)
    environment.setdefault("TRACKER_DATABASE_URL", "sqlite:///:memory:")
    return subprocess.run([sys.executable, "-m", "realtime.balancer", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=environment)


@pytest.mark.parametrize("args, reason", [
    (["--processes", "3", "--port", "28865", "--backend-port", "28864"],
     "--port 28865 is one of the ingest processes' ports 28864-28866"),
    (["--processes", "2", "--port", "28865", "--stats-port", "28865", "--backend-port", "28870"],
     "--port and --stats-port are both 28865"),
    (["--processes", "2", "--port", "28865", "--stats-port", "28871", "--backend-port", "28870"],
     "--stats-port 28871 is one of the ingest processes' ports 28870-28871"),
    (["--processes", "2", "--backend-port", "65535"], "need ports up to 65536, past 65535"),
    (["--port", "70000"], "--port must be a port from 1 to 65535, not 70000"),
    (["--port", "-5"], "--port must be a port from 1 to 65535, not -5"),
    (["--processes", "2", "--stats-port", "0"], "--stats-port must be a port from 1 to 65535, not 0"),
    (["--processes", "0"], "--processes must be at least 1, not 0"),
    (["--processes", "-1"], "--processes must be at least 1, not -1"),
    (["--processes", "abc"], "invalid int value: 'abc'"),
])
def test_the_balancer_refuses_bad_ports_and_counts_before_starting_anything(args, reason):
    done = run_balancer(*args)
    assert done.returncode == 2, done.stderr
    assert reason in done.stderr and "Traceback" not in done.stderr


def test_the_balancer_refuses_a_bad_configuration_before_starting_anything():
    done = run_balancer("--port", "28865", env=dict(os.environ, TRACKER_REDIS_URL="abc"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "python -m realtime.balancer: TRACKER_REDIS_URL must start with redis://, rediss:// or unix:// "
        "(its scheme: none)"]


def test_the_balancers_check_starts_nothing_and_finds_a_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_balancer("--check", "--port", str(port))
        assert done.returncode == 1 and f"port {port} in use" in done.stderr
    assert run_balancer("--check", "--port", str(port)).returncode == 0


def test_the_statistics_stay_on_this_machine_unless_told():
    env = balancer.balancer_env("0.0.0.0", 8765, 8769)
    assert env["INGEST_BIND"] == "0.0.0.0:8765" and env["BALANCER_STATS_BIND"] == "127.0.0.1:8769"
    env = balancer.balancer_env("0.0.0.0", 8765, 8769, stats_host="10.0.0.5")
    assert env["BALANCER_STATS_BIND"] == "10.0.0.5:8769"
    assert balancer.balancer_env("::", 8765, 8769, stats_host="::1")["BALANCER_STATS_BIND"] == "[::1]:8769"
    cluster = balancer.Cluster([8770], "0.0.0.0", 8765, 8769, [])
    try:
        assert cluster.stats_host == "127.0.0.1"
    finally:
        cluster.stop()


def test_a_redis_url_the_client_refuses_stops_the_publisher_with_an_error_at_once(caplog):
    state = LiveState("http://127.0.0.1:6379/13")
    state.live_dirty.add(1)
    state.live_ended.append(2)
    with caplog.at_level(logging.ERROR, logger="realtime"):
        asyncio.run(asyncio.wait_for(state.live_publisher(every_s=0.01), 5))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "TRACKER_REDIS_URL" in errors[0], errors
    assert state.redis_url is None and not state.live_dirty and not state.live_ended  # nothing piles up


def test_a_publisher_that_fails_later_is_logged_at_once(caplog):
    async def failing() -> None:
        raise ConnectionError("gone")

    async def main() -> None:
        task = asyncio.create_task(failing())
        task.add_done_callback(publisher_ended)
        with pytest.raises(ConnectionError):
            await task
        await asyncio.sleep(0)  # the callbacks run

    with caplog.at_level(logging.ERROR, logger="realtime"):
        asyncio.run(main())
    assert any("no longer published" in r.getMessage() and "gone" in r.getMessage() for r in caplog.records)
