"""The device client: offline buffering, network cuts, and a restart mid-activity lose nothing."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.activities.tables import Activity
from core.storage.points import RoutePoint
from realtime.buffer import LocalBuffer
from realtime.device import DeviceClient
from realtime.replay import replay_points

ROOT = Path(__file__).resolve().parents[2]
TRACK = "goldencheetah/10kUNLP2014-Garmin15.fit"


class Proxy:
    """A TCP relay to the server that can cut the network and bring it back."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.up = False
        self.writers: set = set()
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        threading.Thread(target=self._run, args=(started,), daemon=True).start()
        started.wait(10)

    def _run(self, started: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        self.loop.run_forever()

    async def _client(self, reader, writer) -> None:
        if not self.up:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ConnectionError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def set(self, up: bool) -> None:
        def apply():
            self.up = up
            if not up:
                for w in list(self.writers):
                    w.close()
                self.writers.clear()
        self.loop.call_soon_threadsafe(apply)


def server_points(engine) -> tuple[int, int, str]:
    with Session(engine) as s:
        activity = s.scalars(select(Activity).order_by(Activity.id.desc())).first()
        rows = s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == activity.id))
        seqs = s.scalar(select(func.count(func.distinct(RoutePoint.seq))).where(RoutePoint.activity_id == activity.id))
        return rows, seqs, activity.status


def recorded(buffer_path: Path) -> int:
    """Points the device has logged so far (0 until its buffer file and tables exist)."""
    if not buffer_path.exists():
        return 0
    with sqlite3.connect(buffer_path) as db:
        try:
            row = db.execute("SELECT max(next_seq) FROM activities").fetchone()
        except sqlite3.OperationalError:  # the client has created the file, not yet its tables
            return 0
        return row[0] or 0


def test_cut_network_and_client_restart_mid_activity_store_exactly_the_recorded_points(
        ingest, engine, shared_tracks, tmp_path):
    """Record offline, kill the client, restart it, reconnect: every point arrives once."""
    token = ingest.token("device_owner")
    proxy = Proxy(ingest.port)
    buffer_path = tmp_path / "device.sqlite"
    track = str(shared_tracks / TRACK)
    _, points = replay_points(track)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "realtime.client", "replay", track, "--server", f"ws://127.0.0.1:{proxy.port}",
               "--token", token, "--buffer", str(buffer_path)]
    first = subprocess.Popen(command + ["--speed", "300"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while recorded(buffer_path) < len(points) // 3 and time.time() < deadline:
        time.sleep(0.05)
    first.kill()
    first.wait(10)
    halfway = recorded(buffer_path)
    assert 0 < halfway < len(points)
    proxy.set(True)
    second = subprocess.run(command + ["--speed", "0", "--resume", "--timeout", "120"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-2000:]
    rows, distinct, status = server_points(engine)
    assert rows == distinct == len(points)
    assert status == "completed"


def test_the_client_rides_out_network_cuts_while_recording(ingest, engine, tmp_path):
    """Cut the link twice during a live recording; the server ends with every point once."""
    token = ingest.token("cut_runner")
    proxy = Proxy(ingest.port)
    proxy.set(True)
    buffer = LocalBuffer(tmp_path / "dev.sqlite")

    async def scenario():
        client = DeviceClient(buffer, f"ws://127.0.0.1:{proxy.port}", token)
        stop = asyncio.Event()
        runner = asyncio.create_task(client.run(stop))
        local_id = client.start_activity("run")
        t0 = time.time() - 2000
        for i in range(300):
            client.record_point(local_id, {"t": t0 + 5 * i, "lat": 46.0 + i * 15 / 111_180, "lon": 14.5})
            if i in (80, 200):
                proxy.set(False)
            if i in (120, 240):
                proxy.set(True)
            await asyncio.sleep(0.005)
        client.command(local_id, "stop", at=t0 + 1500)
        client.command(local_id, "complete", at=t0 + 1501)
        deadline = time.time() + 60
        while buffer.unsynced_activities() and time.time() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await runner
        return client

    client = asyncio.run(scenario())
    assert buffer.count_points() == 0
    rows, distinct, status = server_points(engine)
    assert rows == distinct == 300
    assert status == "completed"
    assert any(text.startswith("1 kilometre") for text in client.spoken)


def test_offline_recording_still_speaks_cues(tmp_path):
    """With no server at all, the local stats produce the kilometre cues."""
    buffer = LocalBuffer(tmp_path / "dev.sqlite")
    client = DeviceClient(buffer, "ws://127.0.0.1:9", "no-token")
    local_id = client.start_activity("run")
    t0 = time.time() - 2000
    for i in range(150):
        client.record_point(local_id, {"t": t0 + 5 * i, "lat": 46.0 + i * 15 / 111_180, "lon": 14.5})
    assert client.spoken[:2] == [
        "1 kilometre. Time 5 minutes 33 seconds. Average pace 5 minutes 33 per kilometre.",
        "2 kilometres. Time 11 minutes 7 seconds. Average pace 5 minutes 33 per kilometre.",
    ]
    assert buffer.count_points(local_id) == 150




class ScriptedServer:
    """A websocket server that answers like the ingest server but fails on cue: an
    ``internal`` error for the first points message, then refuses a point with latitude 91."""

    def __init__(self):
        self.stored: dict[int, dict] = {}
        self.internal_errors = 0
        self.connections = 0

    async def handler(self, ws) -> None:
        import json as _json
        self.connections += 1
        await ws.send(_json.dumps({"type": "welcome", "v": 1, "user": "scripted"}))
        async for raw in ws:
            msg = _json.loads(raw)
            if msg["type"] == "create":
                reply = {"type": "created", "id": msg["id"], "activity_id": 1, "status": "created"}
            elif msg["type"] == "status":
                reply = {"type": "status", "id": msg["id"], "activity_id": 1, "status": "active"}
            elif self.internal_errors == 0:
                self.internal_errors += 1
                reply = {"type": "error", "id": msg["id"], "code": "internal", "message": "the server failed"}
            elif any(p["lat"] > 90 for p in msg["points"]):
                reply = {"type": "error", "id": msg["id"], "code": "invalid_point", "message": "latitude beyond 90"}
            else:
                self.stored.update({p["seq"]: p for p in msg["points"]})
                reply = {"type": "ack", "id": msg["id"], "activity_id": 1, "stored": len(msg["points"]),
                         "duplicates": 0, "stats": None}
            await ws.send(_json.dumps(reply))


def test_the_client_resends_after_an_internal_error_and_sets_aside_what_is_refused(tmp_path):
    """An ``internal`` answer makes the client reconnect and send the same again; a batch
    refused for one impossible point is sent point by point and only that point is set
    aside (kept in the buffer with its reason); the client never stops."""
    from websockets.asyncio.server import serve

    scripted = ScriptedServer()

    async def scenario():
        async with serve(scripted.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            buffer = LocalBuffer(tmp_path / "device.sqlite")
            client = DeviceClient(buffer, f"ws://127.0.0.1:{port}", "token", batch_points=10)
            local_id = client.start_activity("run")
            for k in range(30):
                client.record_point(local_id, {"t": 1_700_000_000 + 5 * k, "lat": 91.0 if k == 17 else 46 + k * 1e-4,
                                               "lon": 14.5})
            stop = asyncio.Event()
            runner = asyncio.create_task(client.run(stop))
            for _ in range(300):
                if not buffer.count_points() and scripted.stored:
                    break
                assert not runner.done(), "the client gave up"
                await asyncio.sleep(0.05)
            stop.set()
            await runner
            return buffer, client

    buffer, client = asyncio.run(scenario())
    assert sorted(scripted.stored) == [k for k in range(30) if k != 17]
    assert scripted.internal_errors == 1 and scripted.connections >= 2 and client.retries >= 1
    aside = buffer.rejected()
    assert [(r["kind"], r["code"], [p["seq"] for p in r["payload"]]) for r in aside] == \
        [("points", "invalid_point", [17])]
    assert buffer.count_points() == 0
    buffer.close()


def test_points_recorded_offline_after_the_server_closed_the_activity_continue_in_a_new_one(
        ingest, engine, tmp_path):
    """Offline for two days mid-run: the server's worker completes what it had; when the
    device comes back, the rest of its points go to a new activity "(continued)", started,
    stopped and completed as the device recorded it, and nothing is set aside or lost."""
    from sqlalchemy.orm import sessionmaker

    from core.activities.open import close_abandoned

    token = ingest.token("offline_two_days")
    buffer = LocalBuffer(tmp_path / "device.sqlite")
    t0 = time.time() - 3 * 86400

    def point(k):
        return {"t": t0 + 5 * k, "lat": 46.05 + k * 15 / 111_180, "lon": 14.5}

    async def sync_all(client):
        stop = asyncio.Event()
        runner = asyncio.create_task(client.run(stop))
        for _ in range(400):
            if not client.buffer.unsynced_activities():
                break
            assert not runner.done(), runner.exception()
            await asyncio.sleep(0.05)
        stop.set()
        await runner

    client = DeviceClient(buffer, ingest.url, token)
    local_id = client.start_activity("run", title="Long run")
    client.command(local_id, "start", at=t0 - 1)
    for k in range(10):
        client.record_point(local_id, point(k))
    asyncio.run(sync_all(client))
    first_id = buffer.activity(local_id)["server_id"]
    for k in range(10, 40):  # recorded with no network
        client.record_point(local_id, point(k))
    client.command(local_id, "stop", at=point(39)["t"] + 1)
    client.command(local_id, "complete", at=point(39)["t"] + 2)
    close_abandoned(sessionmaker(engine), now=time.time() + 2 * 86400, limit=10_000)  # two days on
    with Session(engine) as s:
        assert s.get(Activity, first_id).status == "completed"
    asyncio.run(sync_all(DeviceClient(buffer, ingest.url, token)))
    continued_id = buffer.activity(local_id)["server_id"]
    assert continued_id not in (None, first_id)
    with Session(engine) as s:
        first, continued = s.get(Activity, first_id), s.get(Activity, continued_id)
        assert first.point_count == 10 and first.status == "completed"
        assert continued.status == "completed" and continued.title == "Long run (continued)"
        assert s.scalar(select(func.count()).select_from(RoutePoint)
                        .where(RoutePoint.activity_id == continued_id)) == 30
    assert buffer.rejected() == [] and buffer.count_points() == 0
    buffer.close()
