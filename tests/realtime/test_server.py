"""The ingest server against real clients: auth, lifecycle, acks, live stats, cues, bad input."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from contextlib import contextmanager

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from realtime import protocol

T0 = time.time() - 3600


@contextmanager
def open_device(ingest, username="device_runner"):
    with connect(ingest.url, additional_headers={"Authorization": f"Bearer {ingest.token(username)}"},
                 open_timeout=10) as ws:
        welcome = json.loads(ws.recv(timeout=10))
        assert welcome["type"] == "welcome" and welcome["v"] == protocol.PROTOCOL_VERSION
        yield ws


def ask(ws, message: dict, heard: list | None = None) -> dict:
    """Send, and return the answer; spoken cues that come before it (those due after an
    earlier ack, a completion's badges) go to ``heard``."""
    ws.send(json.dumps(message))
    while True:
        reply = json.loads(ws.recv(timeout=10))
        if reply.get("type") == "cue":
            (heard if heard is not None else []).append(reply)
            continue
        return reply


def run_points(seqs, step=5.0, speed=3.0):
    return [{"seq": i, "t": T0 + i * step, "lat": 46.05 + i * step * speed / 111_180, "lon": 14.5} for i in seqs]


def started_run(ws) -> int:
    created = ask(ws, {"type": "create", "id": 1, "sport": "run"})
    assert created["type"] == "created"
    assert ask(ws, {"type": "status", "id": 2, "activity_id": created["activity_id"], "command": "start",
                    "at": T0})["status"] == "active"
    return created["activity_id"]


def test_healthz_answers_over_plain_http(ingest):
    """GET /healthz is 200 without a token."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ingest.port}/healthz", timeout=10) as resp:
        assert resp.status == 200 and resp.read() == b"ok\n"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc"])
def test_a_missing_or_wrong_token_is_refused_with_401(ingest, header):
    """The upgrade is refused before the websocket opens."""
    headers = {"Authorization": header} if header else {}
    with pytest.raises(InvalidStatus) as err:
        connect(ingest.url, additional_headers=headers, open_timeout=10)
    assert err.value.response.status_code == 401


def test_a_whole_run_over_the_websocket(ingest):
    """Create, start, stream points with acks and stats, hear a cue, stop, complete, see it in the feed."""
    with open_device(ingest) as ws:
        activity_id = started_run(ws)
        cues = []
        for start in range(0, 400, 50):
            ws.send(json.dumps({"type": "points", "id": f"b{start}", "activity_id": activity_id,
                                "points": run_points(range(start, start + 50))}))
            while True:
                msg = json.loads(ws.recv(timeout=10))
                if msg["type"] == "cue":
                    cues.append(msg["text"])
                    continue
                assert msg["type"] == "ack" and msg["id"] == f"b{start}" and msg["stored"] == 50
                break
        stats = msg["stats"]
        assert stats["distance_m"] == pytest.approx(399 * 15, rel=0.02)
        assert stats["avg_pace_s_per_km"] == pytest.approx(333, rel=0.02)
        assert any(c.startswith("1 kilometre. Time 5 minutes") for c in cues)
        assert len(cues) >= 5
        assert ask(ws, {"type": "status", "activity_id": activity_id, "command": "stop"})["status"] == "stopped"
        heard = []
        assert ask(ws, {"type": "status", "activity_id": activity_id, "command": "complete"},
                   heard)["status"] == "completed"
        feed = ask(ws, {"type": "feed", "id": 9})
        assert feed["items"][0]["activity_id"] == activity_id
        assert feed["items"][0]["distance_m"] == pytest.approx(399 * 15, rel=0.02)
        closed = ask(ws, {"type": "points", "id": 10, "activity_id": activity_id, "points": run_points([400])})
        assert closed["code"] == "activity_closed"


def test_a_completion_speaks_the_badges_it_earns_before_its_answer(ingest):
    """A new athlete's first run (1.6 km) is heard to earn "First steps", as a cue marked with
    its badge before the completion's answer; their second (6 km) earns "First 5 km"."""
    name = f"badge_{uuid.uuid4().hex[:8]}"
    with open_device(ingest, username=name) as ws:
        short = started_run(ws)
        ask(ws, {"type": "points", "id": "p", "activity_id": short, "points": run_points(range(110))})
        ask(ws, {"type": "status", "activity_id": short, "command": "stop"})
        heard = []
        assert ask(ws, {"type": "status", "activity_id": short, "command": "complete"}, heard)["status"] == "completed"
        codes = [c["badge"] for c in heard if "badge" in c]  # an early bird or night owl too, by the hour it runs
        assert codes[0] == "first_activity" and "run_5k" not in codes
        assert heard[0]["activity_id"] == short and heard[0]["text"].startswith("New badge: First steps.")
        long = started_run(ws)
        for start in range(0, 400, 100):
            ask(ws, {"type": "points", "id": start, "activity_id": long, "points": run_points(range(start, start + 100))})
        ask(ws, {"type": "status", "activity_id": long, "command": "stop"})
        heard = []
        done = ask(ws, {"type": "status", "activity_id": long, "command": "complete"}, heard)
        assert done.get("status") == "completed", done
        codes = [c["badge"] for c in heard if "badge" in c]
        assert "run_5k" in codes and "first_activity" not in codes  # the first run's, not this one's
        # Sent again (the device missed the answer): the answer again, the cues not.
        heard = []
        again = ask(ws, {"type": "status", "activity_id": long, "command": "complete"}, heard)
        assert again["status"] == "completed" and heard == []


def test_a_resent_batch_is_acknowledged_again_and_stored_once(ingest):
    """Same seqs twice: the second ack reports duplicates."""
    with open_device(ingest) as ws:
        activity_id = started_run(ws)
        first = ask(ws, {"type": "points", "id": "a", "activity_id": activity_id, "points": run_points(range(10))})
        again = ask(ws, {"type": "points", "id": "a", "activity_id": activity_id, "points": run_points(range(10))})
        assert (first["stored"], first["duplicates"]) == (10, 0)
        assert (again["stored"], again["duplicates"]) == (0, 10)


def test_a_device_cannot_touch_another_athletes_activity(ingest):
    """Someone else's activity id answers not_found."""
    with open_device(ingest, "owner_1") as ws:
        activity_id = started_run(ws)
    with open_device(ingest, "intruder_1") as ws:
        reply = ask(ws, {"type": "points", "id": 1, "activity_id": activity_id, "points": run_points([0])})
        assert reply["code"] == "not_found"
        reply = ask(ws, {"type": "status", "id": 2, "activity_id": activity_id, "command": "discard"})
        assert reply["code"] == "not_found"


BAD = [
    ("{not json", "bad_json"),
    ('{"type": "points", "activity_id": 1, "points": [{"seq": 0, "t": NaN}]}', "bad_json"),
    ("[1, 2]", "bad_message"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"type": "create"}', "missing_field"),
    ('{"type": "create", "sport": 5}', "wrong_type"),
    ('{"type": "create", "sport": "swim"}', "invalid_value"),
    ('{"type": "status", "activity_id": "x", "command": "start"}', "wrong_type"),
    ('{"type": "points", "activity_id": 1, "points": [{"seq": 0, "t": 1e400}]}', "bad_json"),
    ('{"type": "points", "activity_id": 99999999999999999999999, "points": []}', "wrong_type"),
    ('{"type": "points", "activity_id": 9223372036854775808, "points": []}', "invalid_value"),
    ('{"type": "points", "activity_id": 1, "points": [{"seq": 0, "t": 1700000000, "lat": 91, "lon": 0}]}',
     "invalid_point"),
    ('{"type": "points", "activity_id": 1, "points": [{"seq": 0, "t": 4102444800, "lat": 1, "lon": 1}]}',
     "invalid_point"),
    ('{"type": "feed", "cursor": "forged"}', "invalid_value"),
    ('{"type": "recommendations", "kind": "friends"}', "invalid_value"),
    ('{"type": "recommendations", "limit": 500}', "invalid_value"),
    ('{"type": "recommendations", "limit": "ten"}', "wrong_type"),
]


def test_recommendations_are_asked_for_over_the_websocket(ingest):
    """Routes (the default) and athletes, each answered as a list; a new athlete with
    nothing to go on gets an empty one, not an error."""
    with open_device(ingest, "device_recommend") as ws:
        routes = ask(ws, {"type": "recommendations", "id": "r"})
        assert routes == {"type": "recommendations", "id": "r", "kind": "routes", "items": []}
        athletes = ask(ws, {"type": "recommendations", "id": 2, "kind": "athletes", "limit": 5})
        assert athletes["type"] == "recommendations" and athletes["kind"] == "athletes"
        assert isinstance(athletes["items"], list)


@pytest.mark.parametrize("raw,code", BAD)
def test_bad_input_gets_a_clear_error_and_the_connection_survives(ingest, raw, code):
    """Each bad message is answered with its code; the next good message still works."""
    with open_device(ingest) as ws:
        ws.send(raw)
        reply = json.loads(ws.recv(timeout=10))
        assert reply["type"] == "error" and reply["code"] == code, reply
        assert reply["message"]
        assert ask(ws, {"type": "feed", "id": 1})["type"] == "feed"


def test_a_batch_over_the_limit_is_refused(ingest):
    """More than MAX_POINTS_PER_BATCH points is batch_too_large."""
    with open_device(ingest) as ws:
        activity_id = started_run(ws)
        big = run_points(range(protocol.MAX_POINTS_PER_BATCH + 1), step=1.0)
        reply = ask(ws, {"type": "points", "id": 1, "activity_id": activity_id, "points": big})
        assert reply["code"] in ("batch_too_large", "message_too_large")


def test_a_message_over_the_size_limit_closes_with_1009(ingest):
    """The websocket layer refuses an oversized frame; other connections are unaffected."""
    with open_device(ingest) as bystander:
        with open_device(ingest) as ws:
            ws.send("x" * (protocol.MAX_MESSAGE_BYTES + 10))
            with pytest.raises(ConnectionClosed) as err:
                ws.recv(timeout=10)
            assert err.value.rcvd.code == 1009
        assert ask(bystander, {"type": "feed", "id": 1})["type"] == "feed"


def test_a_flood_is_rate_limited(ingest):
    """Hundreds of messages at once: some answered rate_limited, the server stays up."""
    with open_device(ingest) as ws:
        for k in range(300):
            ws.send(json.dumps({"type": "feed", "id": k, "limit": 1}))
        codes = []
        try:
            for _ in range(300):
                codes.append(json.loads(ws.recv(timeout=10)).get("code"))
        except ConnectionClosed:
            pass
        assert "rate_limited" in codes
    with open_device(ingest) as ws:
        assert ask(ws, {"type": "feed", "id": 1})["type"] == "feed"


def test_an_idle_connection_is_closed_with_4000(engine, db_url):
    """A device silent for longer than the idle timeout is disconnected."""
    from tests.realtime.conftest import RunningServer, make_token

    running = RunningServer(db_url, idle_timeout_s=0.5).start()
    try:
        token = make_token(engine, "sleepy_1")
        with connect(running.url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
            json.loads(ws.recv(timeout=10))
            with pytest.raises(ConnectionClosed) as err:
                ws.recv(timeout=10)
            assert err.value.rcvd.code == 4000
    finally:
        running.close()


def test_a_drive_during_a_run_gets_one_pause_suggestion_and_a_spike_none(ingest):
    """Running, then 3 minutes at 50 km/h, then running again: one suggest_pause, spoken text,
    sent after the ack; a single GPS spike during the running parts suggests nothing."""
    # Logged every 5 s: 5 min run, 3 min drive, 3 min run; the drive is happening right now
    # (suggestions are only for the present, not for an old stretch synced late).
    now = time.time() - 7 * 60
    lat, t, pts = 46.05, now, []
    for k in range(132):
        speed = 13.9 if 60 <= k < 96 else 3.0
        lat += speed * 5 / 111_180
        t += 5
        pts.append({"seq": k, "t": t, "lat": lat, "lon": 14.5})
    pts[20]["lat"] += 0.01  # one fix thrown a kilometre off, back at the next
    with open_device(ingest) as ws:
        created = ask(ws, {"type": "create", "id": 1, "sport": "run"})
        activity_id = created["activity_id"]
        ask(ws, {"type": "status", "id": 2, "activity_id": activity_id, "command": "start", "at": now})
        suggestions = []
        for start in range(0, 132, 12):
            ws.send(json.dumps({"type": "points", "id": f"b{start}", "activity_id": activity_id,
                                "points": pts[start:start + 12]}))
            acked = False
            while True:
                msg = json.loads(ws.recv(timeout=10))
                if msg["type"] == "suggest_pause":
                    assert acked  # the ack comes first: the points are durable
                    suggestions.append((start, msg))
                    continue
                if msg["type"] == "ack":
                    acked = True
                    try:
                        follow = json.loads(ws.recv(timeout=0.3))
                    except TimeoutError:
                        break
                    if follow["type"] == "suggest_pause":
                        suggestions.append((start, follow))
                    break
        assert len(suggestions) == 1
        start, msg = suggestions[0]
        assert 60 <= start < 96 and msg["activity_id"] == activity_id
        assert 40 <= msg["speed_kmh"] <= 60
        assert "pause the activity" in msg["text"] and "km/h" in msg["reason"]


def test_a_completion_that_completes_a_weekly_challenge_is_heard(ingest, engine):
    """An athlete with a challenge of one activity this week hears it completed."""
    from datetime import UTC, datetime

    from sqlalchemy.orm import Session

    from core.accounts.users import user_by_name
    from core.challenges.personal import current_week, week_bounds
    from core.challenges.tables import Challenge

    name = f"challenge_{uuid.uuid4().hex[:8]}"
    token = ingest.token(name)
    t = time.time() - 600  # the run starts ten minutes ago: the challenge is for that week
    week = current_week(datetime.fromtimestamp(t, UTC), UTC)
    start, end = week_bounds(week, UTC)
    with Session(engine) as s, s.begin():
        uid = user_by_name(s, name).id
        s.add(Challenge(user_id=uid, week=week, kind="sessions", target=1.0, usual=1.0, level=0, starts_at=start,
                        deadline=end, status="active"))
    with connect(ingest.url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10) as ws:
        json.loads(ws.recv(timeout=10))
        created = ask(ws, {"type": "create", "id": 1, "sport": "run"})
        activity_id = created["activity_id"]
        ask(ws, {"type": "status", "id": 2, "activity_id": activity_id, "command": "start", "at": t})
        points = [{"seq": i, "t": t + i * 5, "lat": 46.05 + i * 15 / 111_180, "lon": 14.5} for i in range(60)]
        ask(ws, {"type": "points", "id": 3, "activity_id": activity_id, "points": points})
        ask(ws, {"type": "status", "id": 4, "activity_id": activity_id, "command": "stop"})
        heard = []
        assert ask(ws, {"type": "status", "id": 5, "activity_id": activity_id, "command": "complete"},
                   heard)["status"] == "completed"
    done = [c for c in heard if "challenge" in c]
    assert [c["text"] for c in done] == ["Challenge completed: 1 activity this week."]
