"""A busy database delays acknowledgements and never fails them; revoked tokens lose their
connections; idle activities are forgotten and rebuilt, pauses included."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.request

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from websockets.exceptions import ConnectionClosed

from core.models import DeviceToken, RoutePoint
from tests.realtime.test_server import ask, open_device, run_points, started_run


def hold_write_lock(engine, activity_id: int, seconds: float, held: threading.Event) -> threading.Thread:
    """Another writer holding the lock the group commit needs, for ``seconds``: SQLite's
    write lock, or on PostgreSQL the activity's row locked for update."""
    def run():
        if engine.dialect.name == "sqlite":
            conn = sqlite3.connect(make_url(engine.url).database, isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(seconds)
            conn.execute("ROLLBACK")
            conn.close()
        else:
            with engine.connect() as conn, conn.begin():
                conn.execute(text("SELECT id FROM activities WHERE id = :id FOR UPDATE"), {"id": activity_id})
                held.set()
                time.sleep(seconds)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_busy_database_delays_acks_and_never_fails_them(ingest, engine):
    """While another transaction holds the lock for 1.5 s, batches wait and are all acknowledged
    afterwards, in order and stored once; the server keeps answering meanwhile."""
    with open_device(ingest) as ws:
        activity_id = started_run(ws)
        assert ask(ws, {"type": "points", "id": 10, "activity_id": activity_id,
                        "points": run_points(range(0, 5))})["type"] == "ack"
        held = threading.Event()
        holder = hold_write_lock(engine, activity_id, 1.5, held)
        assert held.wait(10)
        for k in range(5, 50, 5):
            ws.send(json.dumps({"type": "points", "id": 10 + k, "activity_id": activity_id,
                                "points": run_points(range(k, k + 5))}))
        # The event loop is not stuck behind the lock: plain HTTP is answered at once.
        with urllib.request.urlopen(f"http://127.0.0.1:{ingest.port}/healthz", timeout=1) as r:
            assert r.status == 200
        assert holder.is_alive()
        replies = [json.loads(ws.recv(timeout=30)) for _ in range(9)]
        holder.join()
    assert [r["type"] for r in replies] == ["ack"] * 9
    assert [r["id"] for r in replies] == list(range(15, 60, 5))
    assert all(r["stored"] == 5 for r in replies)
    assert ingest.server.busy_retries > 0
    with Session(engine) as s:
        seqs = s.scalars(select(RoutePoint.seq).where(RoutePoint.activity_id == activity_id)).all()
    assert sorted(seqs) == list(range(50))


def test_revoking_a_device_token_closes_its_connection(ingest, engine):
    """Within seconds of the revocation the device's connection closes with 4001."""
    token = ingest.token("revoked_runner")
    ingest.token = lambda name: token
    with open_device(ingest, "revoked_runner") as ws:
        started_run(ws)
        with Session(engine) as s, s.begin():
            s.execute(update(DeviceToken).where(DeviceToken.token_hash == _digest(token)).values(revoked=True))
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                ws.recv(timeout=20)
    assert closed.value.rcvd.code == 4001


def _digest(token: str) -> str:
    from core.accounts import token_digest
    return token_digest(token)


def test_an_idle_activity_is_forgotten_and_rebuilt_with_its_pauses(ingest, engine):
    """After eviction, the next batch rebuilds the live stats from storage: the time paused
    is not counted, exactly as before the eviction."""
    with open_device(ingest) as ws:
        activity_id = started_run(ws)
        ask(ws, {"type": "points", "id": 3, "activity_id": activity_id, "points": run_points(range(0, 20))})
        pts = run_points(range(20, 40))
        ask(ws, {"type": "status", "id": 4, "activity_id": activity_id, "command": "pause",
                 "at": pts[0]["t"] - 1})
        ask(ws, {"type": "points", "id": 5, "activity_id": activity_id, "points": pts})
        ask(ws, {"type": "status", "id": 6, "activity_id": activity_id, "command": "resume",
                 "at": pts[-1]["t"] + 1})
        before = ask(ws, {"type": "points", "id": 7, "activity_id": activity_id,
                          "points": run_points(range(40, 50))})["stats"]
        server = ingest.server
        server.touched[activity_id] = time.monotonic() - 10_000
        assert ingest.loop.call_soon_threadsafe(lambda: server.evict_idle_activities(time.monotonic())) is not None
        deadline = time.time() + 10
        while activity_id in server.live and time.time() < deadline:
            time.sleep(0.05)
        assert activity_id not in server.live
        after = ask(ws, {"type": "points", "id": 8, "activity_id": activity_id,
                         "points": run_points(range(50, 51))})["stats"]
    assert after["moving_s"] == pytest.approx(before["moving_s"] + 5, abs=0.01)
    assert after["moving_s"] < after["elapsed_s"] - 90  # the pause stays out
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RoutePoint)
                        .where(RoutePoint.activity_id == activity_id)) == 51
