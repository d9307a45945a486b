"""Live ingest while the worker scores a backlog of 2,000 activities, on SQLite and on
PostgreSQL, each in a process of its own as ``make run`` starts them: no ``internal``
error, no device gives up or even reconnects, and every point is stored exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag
from core.storage.engine import make_engine, make_sessionmaker
from core.storage.points import RoutePoint
from core.storage.schema import migrate
from core.synthetic.demo import build_backlog
from realtime.buffer import LocalBuffer
from realtime.device import DeviceClient
from tests.conftest import need
from tests.realtime.test_crash import free_port

ROOT = Path(__file__).resolve().parents[2]
BACKLOG = 2000
DEVICES = 6
RECORD_S = 25.0  # wall time each device records for, sending a fix every POINT_EVERY_S
POINT_EVERY_S = 0.05


@pytest.fixture(scope="module")
def trained_data_dir(tmp_path_factory) -> Path:
    """A data folder holding a trained anomaly model, so the worker starts scoring at once."""
    data = tmp_path_factory.mktemp("worker_data")
    env = dict(os.environ, TRACKER_DATA_DIR=str(data), TRACKER_DATABASE_URL=f"sqlite:///{data / 'train.db'}")
    env.pop("TRACKER_REDIS_URL", None)
    out = subprocess.run([sys.executable, "-m", "core", "anomaly", "train"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return data


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_url(request, tmp_path):
    """A database of its own (the backlog must not leak into other tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'backlog.db'}"
        return
    server = os.environ.get("TRACKER_TEST_POSTGRES_URL")
    need(bool(server), "TRACKER_TEST_POSTGRES_URL is not set (PostgreSQL tests)")
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    name = f"tracker_backlog_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(server).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=log.open("w"),
                            stderr=subprocess.STDOUT)


def wait_for(check, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


async def record(client: DeviceClient, seconds: float) -> tuple[int, int]:
    """Record one run live for ``seconds`` (a fix every POINT_EVERY_S, 5 s apart in track time),
    complete it, and wait until the server has everything. Returns (local id, points)."""
    stop = asyncio.Event()
    runner = asyncio.create_task(client.run(stop))
    local_id = client.start_activity("run", title="Live during a backlog")
    t0 = time.time() - 3 * 3600
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        client.record_point(local_id, {"t": t0 + 5 * n, "lat": 46.05 + n * 15 / 111_180, "lon": 14.5 + n * 1e-6})
        n += 1
        await asyncio.sleep(POINT_EVERY_S)
    client.command(local_id, "stop", at=t0 + 5 * n)
    client.command(local_id, "complete", at=t0 + 5 * n + 1)
    deadline = time.monotonic() + 180
    while client.buffer.unsynced_activities() and time.monotonic() < deadline:
        assert not runner.done(), f"the device gave up: {runner.exception()!r}"
        await asyncio.sleep(0.1)
    stop.set()
    await runner
    return local_id, n


@pytest.mark.timeout(900)
def test_live_ingest_while_the_worker_scores_a_backlog(fresh_url, trained_data_dir, tmp_path):
    """Six devices record live while the worker scores a 2,000-activity backlog: every ack
    arrives (no internal error, no reconnect), every point is stored once, and the worker
    really was scoring meanwhile, each write in a short transaction."""
    engine = make_engine(fresh_url)
    migrate(engine)
    Session = make_sessionmaker(engine)
    with Session() as s, s.begin():
        build_backlog(s, BACKLOG)
        tokens = []
        for k in range(DEVICES):
            user = create_user(s, f"live_backlog_{k}")
            tokens.append(create_device_token(s, user, "phone")[1])
    data = tmp_path / "data"
    shutil.copytree(trained_data_dir / "models", data / "models")
    env = dict(os.environ, TRACKER_DATABASE_URL=fresh_url, TRACKER_DATA_DIR=str(data))
    env.pop("TRACKER_REDIS_URL", None)
    port = free_port()
    server_log, worker_log = tmp_path / "ingest.log", tmp_path / "worker.log"
    server = start(["-m", "realtime", "--host", "127.0.0.1", "--port", str(port)], env, server_log)
    worker = start(["-m", "core", "worker"], env, worker_log)

    def scored() -> int:
        with Session() as s:
            return s.scalar(select(func.count()).select_from(ActivityFlag))

    try:
        wait_for(lambda: scored() > 0, 300, "the worker's first verdict")
        scored_before = scored()
        clients = [DeviceClient(LocalBuffer(tmp_path / f"device{k}.sqlite"), f"ws://127.0.0.1:{port}", token)
                   for k, token in enumerate(tokens)]

        async def all_devices():
            return await asyncio.gather(*[record(c, RECORD_S) for c in clients])

        recorded = asyncio.run(all_devices())
        scored_after = scored()
    finally:
        for proc in (worker, server):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, server):
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
    engine_log = server_log.read_text()
    assert "commit failed" not in engine_log and "internal error" not in engine_log, engine_log[-3000:]
    assert scored_after > scored_before, "the worker scored nothing while the devices recorded"
    assert all(c.retries == 0 for c in clients), [c.retries for c in clients]
    assert all(c.buffer.rejected() == [] for c in clients)
    with Session() as s:
        for client, (local_id, n) in zip(clients, recorded):
            server_id = client.buffer.activity(local_id)["server_id"]
            seqs = s.scalars(select(RoutePoint.seq).where(RoutePoint.activity_id == server_id)).all()
            assert sorted(seqs) == list(range(n))
            assert s.get(Activity, server_id).status == "completed"
    locks = [json.loads(line.split("jobs done: ", 1)[1])["write_locks"]
             for line in worker_log.read_text().splitlines()
             if "jobs done: " in line and "write_locks" in line]
    assert any("anomaly_scoring" in round_ for round_ in locks)
    longest = max(r["anomaly_scoring"]["max_ms"] for r in locks if "anomaly_scoring" in r)
    print(f"{make_url(fresh_url).get_backend_name()}: {scored_after - scored_before} activities scored during "
          f"live ingest; longest scoring write transaction {longest:.1f} ms; "
          f"{sum(n for _, n in recorded)} points from {DEVICES} devices")
    for c in clients:
        c.buffer.close()
    engine.dispose()
