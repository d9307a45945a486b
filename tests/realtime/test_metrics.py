"""The ingest server's Prometheus metrics, scraped from its own port while a real device
streams points: connections, messages by kind, points stored (resends not counted), ack
latency, group commit sizes, refused messages, and a flood's close."""

from __future__ import annotations

import json
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from tests.realtime.test_server import ask, open_device, run_points, started_run


def scrape(ingest) -> dict[tuple, float]:
    """Every sample by (name, labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{ingest.port}/metrics", timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def until(check, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def test_the_metrics_count_what_a_device_sends_and_what_was_stored(ingest):
    before = scrape(ingest)
    assert value(before, "tracker_ingest_connections") == 0
    with open_device(ingest, username="metrics_runner") as ws:
        assert value(scrape(ingest), "tracker_ingest_connections") == 1
        activity_id = started_run(ws)
        for start in (0, 50, 100):
            ack = ask(ws, {"type": "points", "id": f"b{start}", "activity_id": activity_id,
                           "points": run_points(range(start, start + 50))})
            assert ack["type"] == "ack" and ack["stored"] == 50
        again = ask(ws, {"type": "points", "id": "again", "activity_id": activity_id, "points": run_points(range(50))})
        assert again["stored"] == 0  # a resend: nothing new stored
        ws.send("{not json")
        assert json.loads(ws.recv(timeout=10))["type"] == "error"
        after = scrape(ingest)
    assert value(after, "tracker_ingest_points_total") - value(before, "tracker_ingest_points_total") == 150
    assert value(after, "tracker_ingest_messages_total", kind="points") - \
        value(before, "tracker_ingest_messages_total", kind="points") == 4
    assert value(after, "tracker_ingest_messages_total", kind="create") >= 1
    assert value(after, "tracker_ingest_messages_total", kind="status") >= 1
    assert value(after, "tracker_ingest_messages_total", kind="invalid") - \
        value(before, "tracker_ingest_messages_total", kind="invalid") == 1
    assert value(after, "tracker_ingest_ack_seconds_count") - value(before, "tracker_ingest_ack_seconds_count") == 4
    assert 0 < value(after, "tracker_ingest_ack_seconds_sum") - value(before, "tracker_ingest_ack_seconds_sum")
    commits = value(after, "tracker_ingest_commit_batches_count") - value(before, "tracker_ingest_commit_batches_count")
    batches = value(after, "tracker_ingest_commit_batches_sum") - value(before, "tracker_ingest_commit_batches_sum")
    assert 1 <= commits <= 4 and batches == 4  # every batch in a commit, some maybe together
    assert value(after, "tracker_ingest_commit_seconds_count") == value(after, "tracker_ingest_commit_batches_count")
    assert value(after, "tracker_ingest_queue_depth") == 0 and value(after, "tracker_ingest_unacknowledged") == 0
    assert until(lambda: value(scrape(ingest), "tracker_ingest_connections") == 0)


def test_a_flood_shows_in_the_refused_messages_and_its_close(ingest, monkeypatch):
    from realtime import server

    monkeypatch.setattr(server, "FLOOD_STRIKES", 20)
    before = scrape(ingest)
    with open_device(ingest, username="metrics_flood") as ws:
        for k in range(300):
            ws.send(json.dumps({"type": "feed", "id": k, "limit": 1}))
        try:
            for _ in range(300):
                ws.recv(timeout=10)
        except ConnectionClosed:
            pass
    after = scrape(ingest)
    assert value(after, "tracker_ingest_rate_limited_total") - value(before, "tracker_ingest_rate_limited_total") >= 20
    assert value(after, "tracker_ingest_rate_limit_closes_total") - \
        value(before, "tracker_ingest_rate_limit_closes_total") == 1
