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


def collect(ws, message: dict, heard: list) -> dict:
    """Send, and gather every answer (ack, cues, suggestions) until the line goes quiet."""
    ws.send(json.dumps(message))
    ack = None
    while True:
        try:
            reply = json.loads(ws.recv(timeout=0.4 if ack else 10))
        except TimeoutError:
            return ack
        heard.append(reply)
        if reply["type"] in ("ack", "error"):
            ack = reply


@pytest.mark.parametrize("where", ["same process", "other process"])
def test_a_fast_steep_descent_is_no_vehicle_after_a_reconnect(engine, db_url, where):
    """72 km/h down a 3% slope is a rider, not a car, on one connection; the watch rebuilt
    after a reconnect keeps the elevations that say so."""
    a, b = two_servers(engine, db_url)
    start = time.time() - 26 * 5
    pts = [{"seq": k, "t": start + 5 * k, "lat": 46.05 + (k + 1) * 100 / 111_180, "lon": 14.5,
            "ele": 1500.0 - (k + 1) * 3.0} for k in range(26)]
    heard: list[dict] = []
    try:
        with open_device(a, f"descender_{where[0]}") as ws:
            activity_id = ask(ws, {"type": "create", "id": 1, "sport": "ride"})["activity_id"]
            ask(ws, {"type": "status", "id": 2, "activity_id": activity_id, "command": "start", "at": start - 1})
            for k in range(0, 12, 4):
                collect(ws, {"type": "points", "id": f"a{k}", "activity_id": activity_id, "points": pts[k:k + 4]},
                        heard)
        with open_device(a if where == "same process" else b, f"descender_{where[0]}") as ws:
            for k in range(12, 26, 4):
                collect(ws, {"type": "points", "id": f"b{k}", "activity_id": activity_id, "points": pts[k:k + 4]},
                        heard)
        assert [m for m in heard if m["type"] == "suggest_pause"] == []
        assert [m for m in heard if m["type"] == "ack"][-1]["stats"]["distance_m"] > 2000
    finally:
        a.close()
        b.close()


def test_cue_preferences_changed_through_one_process_hold_on_the_other(engine, db_url):
    a, b = two_servers(engine, db_url)
    heard: list[dict] = []
    try:
        with open_device(b, "prefs_mover") as ws:  # B meets the athlete with the default cues (every km)
            ask(ws, {"type": "create", "id": 1, "sport": "run"})
        with open_device(a, "prefs_mover") as ws:
            assert ask(ws, {"type": "cues", "id": 1, "every_km": 2.0, "fields": ["distance"]})["type"] == "cues"
            activity_id = ask(ws, {"type": "create", "id": 2, "sport": "run"})["activity_id"]
            ask(ws, {"type": "status", "id": 3, "activity_id": activity_id, "command": "start", "at": T0})
            collect(ws, {"type": "points", "id": 4, "activity_id": activity_id, "points": run_points(range(50))},
                    heard)
        with open_device(b, "prefs_mover") as ws:  # 750 m to 2,250 m: only the 2 km cue
            collect(ws, {"type": "points", "id": 5, "activity_id": activity_id,
                         "points": run_points(range(50, 150))}, heard)
        assert len([m for m in heard if m["type"] == "cue"]) == 1
    finally:
        a.close()
        b.close()


def test_two_connections_that_start_on_a_process_together_count_every_point_once(engine, db_url):
    """The process has never seen the activity; two connections of its athlete send their first
    batches at once: one load, and both batches in the stats."""
    from websockets.sync.client import connect

    a, b = two_servers(engine, db_url)
    try:
        for trial in range(3):
            user = f"twin{trial}"
            with open_device(a, user) as ws:
                activity_id = ask(ws, {"type": "create", "id": 1, "sport": "run"})["activity_id"]
                ask(ws, {"type": "status", "id": 2, "activity_id": activity_id, "command": "start", "at": T0})
                ask(ws, {"type": "points", "id": 3, "activity_id": activity_id, "points": run_points(range(400))})
            header = {"Authorization": f"Bearer {b.token(user)}"}
            with connect(b.url, additional_headers=header) as one, connect(b.url, additional_headers=header) as two:
                one.recv(timeout=10), two.recv(timeout=10)
                one.send(json.dumps({"type": "points", "id": 4, "activity_id": activity_id,
                                     "points": run_points(range(400, 420))}))
                two.send(json.dumps({"type": "points", "id": 5, "activity_id": activity_id,
                                     "points": run_points(range(420, 440))}))
                for ws in (one, two):
                    while json.loads(ws.recv(timeout=10))["type"] != "ack":
                        pass
                last = ask(two, {"type": "points", "id": 6, "activity_id": activity_id,
                                 "points": run_points(range(440, 441))})
            expected = replay_live("run", [(p["t"], p["lat"], p["lon"]) for p in run_points(range(441))], [])
            assert last["stats"]["distance_m"] == pytest.approx(expected.snapshot()["distance_m"], abs=1)
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


def test_the_supervisor_starts_a_dead_process_again_and_kills_a_hung_one(cluster, monkeypatch):
    first = cluster.ingest[1]
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_for(lambda: cluster.watch_once() or (cluster.ingest[1] is not first and servers_status(cluster)
                                                       .get("ingest2", ("",))[0] == "UP"), timeout=30)
    # A process that stops answering (here: stopped) is killed and started again.
    monkeypatch.setattr(balancer, "HUNG_AFTER_S", 2.0)
    monkeypatch.setattr(balancer, "START_TIMEOUT_S", 2.0)
    hung = cluster.ingest[0]
    hung.send_signal(signal.SIGSTOP)
    wait_for(lambda: cluster.watch_once() or (cluster.ingest[0] is not hung and servers_status(cluster)
                                                      .get("ingest1", ("",))[0] == "UP"), timeout=60)
    assert hung.wait(5) == -signal.SIGKILL


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


async def record(index: int, url: str, token: str, workdir: Path, half: asyncio.Event, counts: dict) -> None:
    """One device recording a run through the balancer: a fix every 5 s of track time, 40 a
    second, and the activity completed at the end."""
    buffer = LocalBuffer(workdir / f"device-{index}.sqlite")
    client = DeviceClient(buffer, url, token)
    stop = asyncio.Event()
    runner = asyncio.create_task(client.run(stop))
    try:
        local_id = client.start_activity("run")
        for k, p in enumerate(run_points(range(POINTS))):
            client.record_point(local_id, dict(p, lat=p["lat"] + index * 0.01))
            await asyncio.sleep(0.025)
            if k == POINTS // 3:
                counts["half"] += 1
                if counts["half"] == DEVICES:
                    half.set()  # the kill comes now, while every device goes on recording
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
        half = asyncio.Event()
        devices = [asyncio.create_task(record(i, url, tokens[i], tmp_path, half, counts)) for i in range(DEVICES)]
        await asyncio.wait_for(half.wait(), 120)
        victim = cluster.ingest[0]
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        await asyncio.wait_for(asyncio.gather(*devices), 180)

    asyncio.run(main())
    assert counts["retries"] >= 1  # some devices were on the killed process and came back
    with Session(engine) as s:
        users = [user_by_name(s, f"failover{i}").id for i in range(DEVICES)]
        rows = s.execute(select(Activity.id, Activity.status, func.count(RoutePoint.seq), func.max(RoutePoint.seq))
                         .join(RoutePoint, RoutePoint.activity_id == Activity.id)
                         .where(Activity.user_id.in_(users))
                         .group_by(Activity.id, Activity.status)).all()
    assert len(rows) == DEVICES
    for _, status, count, last in rows:  # seqs 0 to POINTS - 1, each stored (the key allows one copy)
        assert status == "completed" and count == POINTS and last == POINTS - 1


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


def test_a_port_still_taken_by_an_earlier_balancer_is_a_clear_error(db_url):
    try:
        balancer.haproxy_binary()
    except balancer.MissingBalancer as exc:
        need(False, str(exc))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        stats, backend = free_ports(2)
        cluster = balancer.Cluster([backend], "127.0.0.1", port, stats, [], env=dict(os.environ,
                                                                                   TRACKER_DATABASE_URL=db_url))
        with pytest.raises(RuntimeError, match=f"port {port} in use"):
            cluster.start()
        cluster.stop()
        assert cluster.ingest == [None]  # nothing was started
