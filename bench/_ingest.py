"""Shared pieces of the ingest benches: a database with devices, servers in subprocesses,
and a websocket load generator."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

from _common import ROOT
from sqlalchemy.orm import Session

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.activities.lifecycle import change_status, create_activity
from core.storage.engine import make_engine
from core.storage.schema import migrate

ECHO_SERVER = r"""
import asyncio, json, sys
from websockets.asyncio.server import serve

async def echo(ws):
    async for raw in ws:
        msg = json.loads(raw)
        await ws.send(json.dumps({"type": "ack", "id": msg.get("id"), "stored": len(msg.get("points", []))}))

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None, max_size=2**20):
        print("ready", flush=True)
        await asyncio.Future()

asyncio.run(main())
"""


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Device:
    token: str
    activity_id: int
    seq: int = 0


def make_devices(url: str, count: int, sport: str = "ride") -> list[Device]:
    """``count`` athletes with a token and a started activity each."""
    engine = make_engine(url)
    migrate(engine)
    out = []
    with Session(engine) as s, s.begin():
        for i in range(count):
            user = create_user(s, f"bench{i}_{os.getpid()}_{time.time_ns() % 10**6}")
            _, token = create_device_token(s, user)
            activity = create_activity(s, user, sport)
            change_status(s, activity, "start", at=time.time() - 86_000)
            out.append(Device(token, activity.id))
    engine.dispose()
    return out


def wait_healthy(port: int, proc: subprocess.Popen, path: str = "/healthz") -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1):
                return
        except OSError as exc:
            if "400" in str(exc) or "426" in str(exc):
                return
            time.sleep(0.05)
    raise RuntimeError("server did not start")


def start_ingest(url: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, TRACKER_DATABASE_URL=url, PYTHONPATH=str(ROOT))
    # The load generator multiplexes many devices' traffic onto each connection, so the
    # per-connection limit (meant for one device) is lifted for the bench.
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "--port", str(port), "--log-level", "WARNING",
                             "--rate", "1000000"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, preexec_fn=raise_fd_limit)
    wait_healthy(port, proc)
    return proc, port


def start_echo() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=raise_fd_limit)
    assert proc.stdout.readline().strip() == b"ready"
    return proc, port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@dataclass
class LoadResult:
    messages: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    first_latencies: list[float] = field(default_factory=list)  # each connection's first message
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def percentile(self, q: float, first: bool = False) -> float:
        ordered = sorted(self.first_latencies if first else self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


METRES_PER_DEGREE = 111_195.0


def point_message(device: Device, points: int, t0: float, every_s: float = 0.01, speed_mps: float = 11.1) -> str:
    """The device's next ``points`` fixes, ``every_s`` apart, heading north at ``speed_mps``."""
    batch = []
    step = speed_mps * every_s / METRES_PER_DEGREE
    for _ in range(points):
        batch.append({"seq": device.seq, "t": t0 + device.seq * every_s, "lat": 46.0 + device.seq * step,
                      "lon": 14.5})
        device.seq += 1
    return json.dumps({"type": "points", "id": device.seq, "activity_id": device.activity_id, "points": batch})


async def drive(port: int, devices: list[Device], seconds: float, points_per_message: int = 1,
                interval_s: float | None = None, connect_spread_s: float = 0.0,
                point_every_s: float = 0.01, speed_mps: float = 11.1, on_ready=None) -> LoadResult:
    """Each device sends point messages (closed loop, or one every ``interval_s``) and waits for acks.

    Fixes are ``point_every_s`` apart in the track's own time (a phone logs one every 3 s on a
    ride, 5 s on a run) at ``speed_mps``; sync-mode loads pack them closer, as a device
    catching up sends a long recording. ``on_ready`` is called once every device is
    connected, just before the first message, and again after the last ack.
    """
    from websockets.asyncio.client import connect
    result = LoadResult()
    t0 = time.time() - 86_000
    ready = asyncio.Event()
    started = {"n": 0}

    async def one(device: Device, k: int) -> None:
        if connect_spread_s:
            await asyncio.sleep(connect_spread_s * k / len(devices))
        async with connect(f"ws://127.0.0.1:{port}", additional_headers={"Authorization": f"Bearer {device.token}"},
                           compression=None, open_timeout=60, max_size=2**20, ping_interval=None) as ws:
            if port_is_ingest.get(port):
                await ws.recv()  # welcome
            started["n"] += 1
            if started["n"] == len(devices):
                ready.set()
            await ready.wait()
            if interval_s:
                await asyncio.sleep(interval_s * (k % 1000) / 1000)
            end = time.monotonic() + seconds
            first = True
            while time.monotonic() < end:
                sent = time.monotonic()
                await ws.send(point_message(device, points_per_message, t0, point_every_s, speed_mps))
                while True:
                    reply = json.loads(await ws.recv())
                    if reply.get("type") != "cue":
                        break
                if reply.get("type") != "ack":
                    result.errors += 1
                now = time.monotonic()
                # The first message of a connection also loads its activity: counted apart.
                (result.first_latencies if first else result.latencies).append(now - sent)
                first = False
                result.messages += 1
                if interval_s:
                    await asyncio.sleep(max(0.0, interval_s - (now - sent)))

    tasks = [asyncio.create_task(one(d, k)) for k, d in enumerate(devices)]
    await ready.wait()
    if on_ready is not None:
        on_ready()
    began = time.monotonic()
    await asyncio.gather(*tasks)
    result.seconds = time.monotonic() - began
    if on_ready is not None:
        on_ready()
    return result


port_is_ingest: dict[int, bool] = {}
