"""Live state for the dashboard: the ingest server publishes it to Redis; without Redis the
dashboard recomputes the same figures from the stored points."""

from __future__ import annotations

import os
import time

from sqlalchemy.orm import Session

from core.accounts.users import user_by_name
from core.activities import live_board as livestate
from dashboard.queries import live_activities
from tests.realtime.conftest import RunningServer, make_token
from tests.realtime.test_server import T0, ask, open_device, run_points, started_run


def recent_points(seqs):
    """Points logged over the last few minutes: the Live page lists only activities with a recent point."""
    shift = time.time() - 400 - T0
    return [dict(p, t=p["t"] + shift) for p in run_points(seqs)]


def wait_for(check, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_live_state_goes_through_redis_and_matches_the_database(engine, db_url, redis_client):
    server = RunningServer(db_url, idle_timeout_s=30, redis_url=os.environ["TRACKER_TEST_REDIS_URL"]).start()
    server.token = lambda name: make_token(engine, name)
    try:
        with open_device(server, "live_runner") as ws:
            activity_id = started_run(ws)
            ack = None
            for k in range(0, 60, 10):
                ack = ask(ws, {"type": "points", "id": 10 + k, "activity_id": activity_id,
                               "points": recent_points(range(k, k + 10))})
                assert ack["type"] == "ack"
            state = wait_for(lambda: livestate.read(redis_client).get(activity_id))
            assert state["stats"] == ack["stats"] and state["status"] == "active"
            assert state["position"] is not None

            with Session(engine) as s:
                viewer = user_by_name(s, "live_runner")
                via_redis = live_activities(s, viewer.id, redis_client)
                via_db = live_activities(s, viewer.id, None)
            assert [r["id"] for r in via_redis] == [r["id"] for r in via_db] == [activity_id]
            assert via_redis[0]["source"] == "redis" and via_db[0]["source"] == "database"
            assert via_redis[0]["stats"] == via_db[0]["stats"]
            assert via_redis[0]["position"][:2] == via_db[0]["position"][:2]

            assert ask(ws, {"type": "status", "id": 99, "activity_id": activity_id, "command": "stop"})["type"] == \
                "status"
            assert ask(ws, {"type": "status", "id": 100, "activity_id": activity_id,
                            "command": "complete"})["status"] == "completed"
            wait_for(lambda: activity_id not in livestate.read(redis_client))
            with Session(engine) as s:
                assert live_activities(s, viewer.id, redis_client) == []
    finally:
        server.close()
