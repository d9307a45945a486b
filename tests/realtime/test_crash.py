"""Crash safety: SIGKILL the server mid-ingest 50 times; SIGTERM drains and closes with 1001."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.sync.client import connect

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.activities.lifecycle import change_status, create_activity
from core.storage.points import RoutePoint

ROOT = Path(__file__).resolve().parents[2]
KILLS = 50
BATCH = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db_url: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, TRACKER_DATABASE_URL=db_url, PYTHONPATH=str(ROOT))
    # A syncing device sends as fast as acks come back, so the per-device rate limit is lifted.
    proc = subprocess.Popen([sys.executable, "-m", "realtime", "--port", str(port), "--log-level", "WARNING",
                             "--rate", "100000"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode()) from None
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def setup_activity(engine) -> tuple[str, int]:
    with Session(engine) as s, s.begin():
        user = create_user(s, f"crash_{random.randrange(10**9)}")
        _, token = create_device_token(s, user)
        activity = create_activity(s, user, "ride")
        change_status(s, activity, "start", at=time.time() - 7200)
        return token, activity.id


def point(seq: int, t0: float) -> dict:
    return {"seq": seq, "t": t0 + seq, "lat": 46.0 + seq * 1e-5, "lon": 14.5}


def reply_to(ws) -> dict:
    """The next answer, skipping the spoken cues the server sends along."""
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] != "cue":
            return msg


def push(port: int, token: str, activity_id: int, pending: list[list[dict]], acked: set, make_batch) -> None:
    """Send unacknowledged batches first, then new ones, until the connection dies."""
    with connect(f"ws://127.0.0.1:{port}", additional_headers={"Authorization": f"Bearer {token}"},
                 open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))
        while True:
            if not pending:
                pending.append(make_batch())
            batch = pending[0]
            ws.send(json.dumps({"type": "points", "id": batch[0]["seq"], "activity_id": activity_id,
                                "points": batch}))
            reply = reply_to(ws)
            assert reply["type"] == "ack", reply
            acked.update(p["seq"] for p in batch)
            pending.pop(0)


@pytest.mark.timeout(900)
def test_sigkill_mid_ingest_loses_no_acknowledged_point(engine):
    """50 kills: every acknowledged point is stored, and each sent point is stored exactly once."""
    db_url = engine.url.render_as_string(hide_password=False)
    token, activity_id = setup_activity(engine)
    t0 = time.time() - 86_400
    sent = {"next": 0}

    def make_batch():
        start = sent["next"]
        sent["next"] += BATCH
        return [point(s, t0) for s in range(start, start + BATCH)]

    pending: list[list[dict]] = []
    acked: set[int] = set()
    rng = random.Random(1)
    for _ in range(KILLS):
        proc, port = start_server(db_url)
        killer = threading.Timer(rng.uniform(0.05, 0.4), proc.kill)
        killer.start()
        try:
            push(port, token, activity_id, pending, acked, make_batch)
        except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
            pass  # killed mid-message or mid-handshake
        killer.join()
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        with Session(engine) as s:
            stored = set(s.scalars(select(RoutePoint.seq).where(RoutePoint.activity_id == activity_id)))
        assert acked <= stored, f"lost acknowledged points: {sorted(acked - stored)[:10]}"
    # A last, gentle run resends whatever was never acknowledged.
    proc, port = start_server(db_url)
    try:
        with connect(f"ws://127.0.0.1:{port}", additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            json.loads(ws.recv(timeout=10))
            for batch in pending:
                ws.send(json.dumps({"type": "points", "activity_id": activity_id, "points": batch}))
                assert reply_to(ws)["type"] == "ack"
                acked.update(p["seq"] for p in batch)
    finally:
        proc.terminate()
        proc.wait(30)
    with Session(engine) as s:
        rows = s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == activity_id))
    assert acked == set(range(sent["next"]))
    assert rows == sent["next"] == len(acked)
    assert sent["next"] > KILLS * BATCH


def test_sigterm_drains_closes_with_1001_and_exits(engine):
    """On SIGTERM a connected device sees close code 1001 and the process exits cleanly."""
    db_url = engine.url.render_as_string(hide_password=False)
    token, activity_id = setup_activity(engine)
    proc, port = start_server(db_url)
    with connect(f"ws://127.0.0.1:{port}", additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        json.loads(ws.recv(timeout=10))
        ws.send(json.dumps({"type": "points", "activity_id": activity_id,
                            "points": [point(s, time.time() - 100) for s in range(5)]}))
        assert reply_to(ws)["stored"] == 5
        proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as err:
            ws.recv(timeout=30)
        assert err.value.rcvd.code == 1001
    assert proc.wait(30) == 0
