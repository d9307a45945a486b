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

from core.accounts.tables import DeviceToken
from core.storage.points import RoutePoint
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
    from core.accounts.tokens import token_digest
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
        ingest.loop.call_soon_threadsafe(lambda: server.evict_idle_activities(time.monotonic()))
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


def test_a_connection_cannot_pile_up_batches_while_the_database_is_busy(ingest, engine):
    """While the lock is held, a connection gets at most MAX_UNSETTLED_PER_CONNECTION batches
    queued; the rest are answered rate_limited (resend later), and the queued ones are all
    acknowledged once the lock goes."""
    from realtime.commit import MAX_UNSETTLED_PER_CONNECTION

    with open_device(ingest) as ws:
        activity_id = started_run(ws)
        held = threading.Event()
        holder = hold_write_lock(engine, activity_id, 2.0, held)
        assert held.wait(10)
        total = MAX_UNSETTLED_PER_CONNECTION + 20  # within the flood limiter's burst of 100
        for k in range(total):
            ws.send(json.dumps({"type": "points", "id": k, "activity_id": activity_id,
                                "points": run_points(range(k, k + 1))}))
        replies = [json.loads(ws.recv(timeout=30)) for _ in range(total)]
        holder.join()
    acked = [r for r in replies if r["type"] == "ack"]
    refused = [r for r in replies if r.get("code") == "rate_limited"]
    assert len(acked) == MAX_UNSETTLED_PER_CONNECTION and len(refused) == total - len(acked)
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(RoutePoint)
                        .where(RoutePoint.activity_id == activity_id)) == MAX_UNSETTLED_PER_CONNECTION


def test_shutdown_gives_up_waiting_for_a_locked_database(engine, db_url, monkeypatch):
    """SIGTERM while the database stays locked: the server closes after DRAIN_TIMEOUT_S
    instead of waiting for ever; the device resends what was not acknowledged."""
    import realtime.server as server_module
    from tests.realtime.conftest import RunningServer, make_token

    monkeypatch.setattr(server_module, "DRAIN_TIMEOUT_S", 1.0)
    running = RunningServer(db_url, idle_timeout_s=30).start()
    running.token = lambda name: make_token(engine, name)
    with open_device(running) as ws:
        activity_id = started_run(ws)
        held = threading.Event()
        holder = hold_write_lock(engine, activity_id, 8.0, held)
        assert held.wait(10)
        ws.send(json.dumps({"type": "points", "id": 1, "activity_id": activity_id, "points": run_points(range(3))}))
        time.sleep(0.2)
        running.loop.call_soon_threadsafe(lambda: running.stop.done() or running.stop.set_result(None))
        running.thread.join(6)
        assert not running.thread.is_alive(), "the server still waits for the lock"
        assert holder.is_alive()
        with pytest.raises(ConnectionClosed):
            while True:
                assert json.loads(ws.recv(timeout=5))["type"] != "ack"
    running.store.close()
    holder.join()


def test_a_command_outlasting_the_busy_timeout_is_answered_after_the_lock(ingest, engine):
    """SQLite: a status change that waits longer than the 10 s busy timeout is tried again,
    and answered once the lock goes, never with ``internal``."""
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL row locks wait without a timeout on this path")
    from core.storage.engine import SQLITE_BUSY_TIMEOUT_MS

    with open_device(ingest) as ws:
        activity_id = started_run(ws)
        held = threading.Event()
        holder = hold_write_lock(engine, activity_id, SQLITE_BUSY_TIMEOUT_MS / 1000 + 2, held)
        assert held.wait(10)
        reply = ask_within(ws, {"type": "status", "id": 7, "activity_id": activity_id, "command": "pause"}, 60)
        holder.join()
    assert reply["type"] == "status" and reply["status"] == "paused", reply
    assert ingest.server.busy_retries > 0


def ask_within(ws, message: dict, timeout: float) -> dict:
    ws.send(json.dumps(message))
    return json.loads(ws.recv(timeout=timeout))
