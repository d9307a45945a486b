"""Several ingest processes: a device that moves between them continues its activity, the
Live page sees every process's athletes, and behind a real HAProxy a killed process loses
nothing acknowledged."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.accounts.users import user_by_name
from core.activities import live_board
from core.activities.live import replay_live
from core.activities.tables import Activity
from core.storage.points import RoutePoint
from realtime import balancer
from realtime.buffer import LocalBuffer
from realtime.device import DeviceClient
from tests.conftest import need
from tests.realtime.conftest import RunningServer, make_token
from tests.realtime.test_live_state import recent_points, wait_for
from tests.realtime.test_server import T0, ask, open_device, run_points


def two_servers(engine, db_url, **options) -> tuple[RunningServer, RunningServer]:
    servers = []
    for _ in range(2):
        server = RunningServer(db_url, idle_timeout_s=60, **options).start()
        server.token = lambda name: make_token(engine, name)
        servers.append(server)
    return servers[0], servers[1]


def send(server, username, activity_id, points, heard, msg_id) -> dict:
    with open_device(server, username) as ws:
        ack = ask(ws, {"type": "points", "id": msg_id, "activity_id": activity_id, "points": points}, heard)
        assert ack["type"] == "ack", ack
        while True:  # cues now due follow the ack
            try:
                heard.append(json.loads(ws.recv(timeout=0.5)))
            except TimeoutError:
                return ack


def test_a_device_that_moves_between_processes_continues_its_activity(engine, db_url):
    """Points go to process A, then B, then A again (which still holds what it knew before):
    each ack's stats count every stored point, and each kilometre is spoken once."""
    a, b = two_servers(engine, db_url)
    try:
        heard: list[dict] = []
        with open_device(a, "mover") as ws:
            activity_id = ask(ws, {"type": "create", "id": 1, "sport": "run"})["activity_id"]
            ask(ws, {"type": "status", "id": 2, "activity_id": activity_id, "command": "start", "at": T0})
        # 15 m a fix: 750 m on A, 1500 m after B, 2250 m after A again.
        legs = [(a, range(0, 50)), (b, range(50, 100)), (a, range(100, 150))]
        for k, (server, seqs) in enumerate(legs):
            ack = send(server, "mover", activity_id, run_points(seqs), heard, 10 + k)
            expected = replay_live("run", [(p["t"], p["lat"], p["lon"]) for p in run_points(range(seqs.stop))],
                                   [])
            assert ack["stats"]["distance_m"] == pytest.approx(expected.snapshot()["distance_m"], abs=0.5)
            assert ack["stats"]["elapsed_s"] == pytest.approx(expected.snapshot()["elapsed_s"])
        texts = [c["text"] for c in heard if c["type"] == "cue"]
        assert len(texts) == 2, texts  # the 1 km cue on B, the 2 km cue on A: neither twice
        assert "1" in texts[0] and "2" in texts[1]
    finally:
        a.close()
        b.close()


def test_a_drive_that_crosses_processes_is_suggested_once(engine, db_url):
    """A run, then three minutes at 50 km/h, the device moving from A to B in the middle of
    the drive and back to A: the drive's start is kept across the move (one suggestion, in
    the drive), and A, back again, does not suggest it a second time."""
    now = time.time() - 7 * 60
    lat, t, pts = 46.05, now, []
    for k in range(132):
        lat += (13.9 if 60 <= k < 96 else 3.0) * 5 / 111_180
        t += 5
        pts.append({"seq": k, "t": t, "lat": lat, "lon": 14.5})
    a, b = two_servers(engine, db_url)
    suggestions = []

    def leg(server, start, stop):
        with open_device(server, "driver") as ws:
            for first in range(start, stop, 4):
                ws.send(json.dumps({"type": "points", "id": f"p{first}", "activity_id": activity_id,
                                    "points": pts[first:min(first + 4, stop)]}))
                while True:
                    msg = json.loads(ws.recv(timeout=10))
                    if msg["type"] == "suggest_pause":
                        suggestions.append((first, msg))
                    if msg["type"] == "ack":
                        try:
                            follow = json.loads(ws.recv(timeout=0.3))
                        except TimeoutError:
                            break
                        if follow["type"] == "suggest_pause":
                            suggestions.append((first, follow))
                        break

    try:
        with open_device(a, "driver") as ws:
            activity_id = ask(ws, {"type": "create", "id": 1, "sport": "run"})["activity_id"]
            ask(ws, {"type": "status", "id": 2, "activity_id": activity_id, "command": "start", "at": now})
        leg(a, 0, 72)  # 12 fixes (one minute) of the drive on A: below the run's hold time
        leg(b, 72, 84)  # the hold time is reached here
        leg(a, 84, 132)  # the rest of the drive, back on A
        assert len(suggestions) == 1, suggestions
        first, msg = suggestions[0]
        assert 72 <= first < 84
        assert msg["since"] <= pts[66]["t"]  # the stretch began on A
    finally:
        a.close()
        b.close()


def test_the_live_page_sees_athletes_of_every_process(engine, db_url, redis_client):
    a, b = two_servers(engine, db_url, redis_url=os.environ["TRACKER_TEST_REDIS_URL"])
    try:
        ids = []
        for server, name in ((a, "live_on_a"), (b, "live_on_b")):
            with open_device(server, name) as ws:
                activity_id = ask(ws, {"type": "create", "id": 1, "sport": "run"})["activity_id"]
                ask(ws, {"type": "status", "id": 2, "activity_id": activity_id, "command": "start",
                         "at": time.time() - 500})
                assert ask(ws, {"type": "points", "id": 3, "activity_id": activity_id,
                                "points": recent_points(range(10))})["type"] == "ack"
                ids.append(activity_id)
        board = wait_for(lambda: (lambda r: r if set(ids) <= set(r) else None)(live_board.read(redis_client)))
        assert {board[i]["activity_id"] for i in ids} == set(ids)
    finally:
        a.close()
        b.close()


# Behind HAProxy.

def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def cluster(db_url):
    try:
        balancer.haproxy_binary()
    except balancer.MissingBalancer as exc:
        need(False, str(exc))
    port, stats, *backends = free_ports(4)
    env = dict(os.environ, TRACKER_DATABASE_URL=db_url)
    env.pop("TRACKER_REDIS_URL", None)
    running = balancer.Cluster(backends, "127.0.0.1", port, stats, ["--log-level", "WARNING"], env=env)
    running.start()
    yield running
    running.stop()


def servers_status(cluster) -> dict[str, tuple[str, str]]:
    """Each ingest server's state in HAProxy and what its last health check said."""
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.stats_port}/stats;csv", timeout=5) as resp:
        rows = list(csv.reader(resp.read().decode().lstrip("# ").splitlines()))
    header = rows[0]
    return {r[1]: (r[header.index("status")], r[header.index("check_status")])
            for r in rows[1:] if r[0] == "ingest" and r[1].startswith("ingest")}


def test_the_balancer_checks_health_and_marks_a_dead_process_down(cluster):
    time.sleep(2.5)  # a few rounds of health checks
    assert servers_status(cluster) == {"ingest1": ("UP", "L7OK"), "ingest2": ("UP", "L7OK")}
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.stats_port}/metrics", timeout=5) as resp:
        assert b"haproxy_backend_active_servers" in resp.read()
    cluster.ingest[1].send_signal(signal.SIGKILL)
    cluster.ingest[1].wait()
    wait_for(lambda: servers_status(cluster)["ingest2"][0] == "DOWN")
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.stats_port}/metrics", timeout=5) as resp:
        metrics = resp.read().decode()
    assert 'haproxy_server_status{proxy="ingest",server="ingest2",state="UP"} 0' in metrics
    # Devices never reach the processes' metrics through the balancer.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"http://127.0.0.1:{cluster.port}/metrics", timeout=5)
    assert refused.value.code == 403
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.stats_port}/metrics", timeout=5) as resp:
        assert b"haproxy_backend_active_servers" in resp.read()


DEVICES = 8
POINTS = 240


async def record(index: int, url: str, token: str, workdir: Path, kill_at: asyncio.Event,
                 half: asyncio.Event, counts: dict) -> None:
    """One device recording a run through the balancer: a fix every 5 s of track time, 40 a
    second; it reaches half way, waits for the kill, and finishes."""
    buffer = LocalBuffer(workdir / f"device-{index}.sqlite")
    client = DeviceClient(buffer, url, token)
    stop = asyncio.Event()
    runner = asyncio.create_task(client.run(stop))
    try:
        local_id = client.start_activity("run")
        for k, p in enumerate(run_points(range(POINTS))):
            client.record_point(local_id, dict(p, lat=p["lat"] + index * 0.01))
            await asyncio.sleep(0.025)
            if k == POINTS // 2:
                counts["half"] += 1
                if counts["half"] == DEVICES:
                    half.set()
                await kill_at.wait()
        client.command(local_id, "stop", at=T0 + POINTS * 5 + 1)
        client.command(local_id, "complete", at=T0 + POINTS * 5 + 2)
        while buffer.unsynced_activities():
            if runner.done():
                runner.result()
            await asyncio.sleep(0.1)
        counts["retries"] += client.retries
    finally:
        stop.set()
        await runner
        buffer.close()


def test_a_killed_ingest_process_loses_nothing_acknowledged(cluster, engine, tmp_path):
    """Devices record through HAProxy; one ingest process is killed with SIGKILL half way;
    its devices reconnect through the balancer to the other, and every activity ends with
    each of its points stored exactly once."""
    tokens = [make_token(engine, f"failover{i}") for i in range(DEVICES)]
    url = f"ws://127.0.0.1:{cluster.port}"
    counts = {"half": 0, "retries": 0}

    async def main():
        kill_at, half = asyncio.Event(), asyncio.Event()
        devices = [asyncio.create_task(record(i, url, tokens[i], tmp_path, kill_at, half, counts))
                   for i in range(DEVICES)]
        await asyncio.wait_for(half.wait(), 120)
        victim = cluster.ingest[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        kill_at.set()
        await asyncio.wait_for(asyncio.gather(*devices), 180)

    asyncio.run(main())
    assert counts["retries"] >= 1  # some devices were on the killed process and came back
    with Session(engine) as s:
        users = [user_by_name(s, f"failover{i}").id for i in range(DEVICES)]
        rows = s.execute(select(Activity.id, Activity.status, func.count(RoutePoint.seq),
                                func.count(func.distinct(RoutePoint.seq)))
                         .join(RoutePoint, RoutePoint.activity_id == Activity.id)
                         .where(Activity.user_id.in_(users))
                         .group_by(Activity.id, Activity.status)).all()
    assert len(rows) == DEVICES
    for _, status, count, distinct in rows:
        assert status == "completed" and count == distinct == POINTS


def test_more_processes_without_haproxy_say_what_to_install(monkeypatch):
    monkeypatch.setattr(balancer.shutil, "which", lambda name: None)
    monkeypatch.setattr(balancer.os, "access", lambda path, mode: False)
    with pytest.raises(balancer.MissingBalancer, match="apt-get install haproxy"):
        balancer.haproxy_binary()
    monkeypatch.setattr(balancer, "configure_logging", lambda level: None)
    monkeypatch.setattr("sys.argv", ["realtime.balancer", "--processes", "2", "--port", str(free_ports(1)[0])])
    assert balancer.main() == 1


def test_the_written_configuration_lists_every_process_and_haproxy_accepts_it(tmp_path):
    path = balancer.write_config(tmp_path, [("127.0.0.1", 8770), ("10.0.0.12", 8765)])
    text = path.read_text()
    assert text.rstrip().endswith("server ingest1 127.0.0.1:8770\n    server ingest2 10.0.0.12:8765")
    assert "balance leastconn" in text and "timeout tunnel" in text
    try:
        binary = balancer.haproxy_binary()
    except balancer.MissingBalancer as exc:
        need(False, str(exc))
    check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True,
                           env=balancer.balancer_env("127.0.0.1", 8765, 8769))
    assert check.returncode == 0, check.stderr
