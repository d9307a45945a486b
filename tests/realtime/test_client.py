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

from core.models import Activity, RoutePoint
from realtime.client import DeviceClient, LocalBuffer, replay_points

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


