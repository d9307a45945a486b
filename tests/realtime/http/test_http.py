"""The HTTP ingest service over a real socket: phone apps' endpoints, the REST API, and what
every request goes through (token, body limit, rate limit, errors)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.activities.tables import Activity
from core.storage.points import RoutePoint
from tests.realtime.conftest import make_token
from tests.realtime.http.conftest import RunningHttp
from tests.realtime.http.test_formats import LJUBLJANA

LAT, LON = LJUBLJANA


def stored_points(engine, username: str) -> int:
    """How many points the athlete's activities hold."""
    ids = [a.id for a in activities_of(engine, username)]
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id.in_(ids)))


def activities_of(engine, username: str) -> list[Activity]:
    from core.accounts.users import user_by_name

    with Session(engine) as s:
        user = user_by_name(s, username)
        return list(s.scalars(select(Activity).where(Activity.user_id == user.id).order_by(Activity.id)))


def test_health(http):
    r = http.session.get(http.url + "/healthz")
    assert r.status_code == 200 and r.text == "ok\n"


def test_osmand_query_form_and_json_store_durably_before_answering(http, engine):
    token = http.token("web-ana")
    t0 = time.time() - 60
    r = http.session.get(http.url + "/", params={"id": token, "timestamp": int(t0), "lat": LAT, "lon": LON,
                                                 "speed": 5.0, "bearing": 90, "altitude": 300, "accuracy": 5,
                                                 "batt": 80})
    assert r.status_code == 200, r.text
    assert stored_points(engine, "web-ana") == 1  # durable when answered
    r = http.session.post(http.url + "/", data={"deviceid": token, "timestamp": int(t0) + 5,
                                                "lat": LAT + 0.0001, "lon": LON})
    assert r.status_code == 200, r.text
    body = {"device_id": token, "location": {
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t0 + 10)),
        "coords": {"latitude": LAT + 0.0002, "longitude": LON, "accuracy": 4, "speed": 2.8, "heading": 10,
                   "altitude": 301},
        "is_moving": True, "odometer": 25, "event": "motionchange", "battery": {"level": 0.8, "is_charging": False},
        "activity": {"type": "running"}}}
    r = http.session.post(http.url + "/", json=body)
    assert r.status_code == 200, r.text
    assert stored_points(engine, "web-ana") == 3
    acts = activities_of(engine, "web-ana")
    assert len(acts) == 1 and acts[0].status == "active" and acts[0].source != "import"


def test_traccar_json_batch_and_duplicates(http, engine):
    token = http.token("web-bob")
    t0 = time.time() - 300
    locations = [{"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 5 * k)),
                  "coords": {"latitude": LAT + 0.0001 * k, "longitude": LON}} for k in range(10)]
    r = http.session.post(http.url + "/", json={"device_id": token, "location": locations})
    assert r.status_code == 200, r.text
    r = http.session.post(http.url + "/", json={"device_id": token, "location": locations[3:7]})  # sent twice
    assert r.status_code == 200
    assert stored_points(engine, "web-bob") == 10


def test_osmand_bearer_header_identifies_the_device(http, engine):
    token = http.token("web-cyd")
    r = http.session.get(http.url + "/", params={"id": "phone-7", "lat": LAT, "lon": LON},
                         headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert stored_points(engine, "web-cyd") == 1


def test_unknown_and_revoked_ids_get_the_same_401(http, engine):
    token = http.token("web-dee")
    unknown = http.session.get(http.url + "/", params={"id": "trk_nope", "lat": LAT, "lon": LON})
    missing = http.session.get(http.url + "/", params={"lat": LAT, "lon": LON})
    assert unknown.status_code == missing.status_code == 401
    assert unknown.text == missing.text
    from core.accounts.tables import DeviceToken
    from core.accounts.users import user_by_name

    with Session(engine) as s, s.begin():
        owner = user_by_name(s, "web-dee")
        for row in s.scalars(select(DeviceToken).where(DeviceToken.user_id == owner.id)):
            row.revoked = True
    deadline = time.monotonic() + 10
    while True:  # the service forgets revoked tokens within seconds
        revoked = http.session.get(http.url + "/", params={"id": token, "lat": LAT, "lon": LON})
        if revoked.status_code == 401 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert revoked.status_code == 401 and revoked.text == unknown.text
    api = http.session.get(http.url + "/api/v1/news-feed", headers={"Authorization": "Bearer trk_nope"})
    assert api.status_code == 401 and api.json()["code"] == "unauthorized"


def test_bad_fixes_get_a_reason(http, engine):
    token = http.token("web-eve")
    cases = [
        ({"id": token, "lat": 95, "lon": LON}, "latitude"),
        ({"id": token, "lat": "abc", "lon": LON}, "'lat' must be a number"),
        ({"id": token, "lon": LON}, "'lat' is required"),
        ({"id": token, "lat": LAT, "lon": LON, "timestamp": "yesterday"}, "timestamp"),
        ({"id": token, "lat": LAT, "lon": LON, "timestamp": int(time.time()) + 3600}, "future"),
        ({"id": token, "lat": "nan", "lon": LON}, "finite"),
    ]
    for params, words in cases:
        r = http.session.get(http.url + "/", params=params)
        assert r.status_code == 400, (params, r.text)
        assert words in r.text, (params, r.text)
    for raw in (b"{not json", b'{"location": 5}', b"[1, 2]", b'{"location": {"coords": {"latitude": 1e999}}}'):
        r = http.session.post(http.url + "/", data=raw, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, (raw, r.text)
    assert stored_points(engine, "web-eve") == 0


def test_owntracks_basic_and_bearer(http, engine):
    token = http.token("web-fin")
    basic = "Basic " + base64.b64encode(f"fin:{token}".encode()).decode()
    msg = {"_type": "location", "lat": LAT, "lon": LON, "tst": int(time.time()) - 30, "acc": 5, "alt": 290,
           "vel": 12, "tid": "fn", "batt": 77}
    r = http.session.post(http.url + "/owntracks", json=msg, headers={"Authorization": basic})
    assert r.status_code == 200 and r.json() == []
    r = http.session.post(http.url + "/owntracks", json={**msg, "tst": msg["tst"] + 5},
                          headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json() == []
    r = http.session.post(http.url + "/owntracks", json={"_type": "lwt", "tst": 1},
                          headers={"Authorization": basic})
    assert r.status_code == 200 and r.json() == []
    r = http.session.post(http.url + "/owntracks", json=msg,
                          headers={"Authorization": "Basic " + base64.b64encode(b"fin:wrong").decode()})
    assert r.status_code == 401
    r = http.session.post(http.url + "/owntracks", json=msg)
    assert r.status_code == 401
    assert stored_points(engine, "web-fin") == 2


def test_bodies_over_the_limit_get_413_before_parsing(http):
    token = http.token("web-gus")
    big = b"{" + b" " * (300 * 1024) + b"}"
    r = http.session.post(http.url + "/api/v1/gps-logs", data=big,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "message_too_large"

    def chunks():
        for _ in range(400):
            yield b" " * 1024

    r = http.session.post(http.url + "/owntracks", data=chunks(), headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 413
    # A declared length far beyond the limit is refused without waiting for the body.
    with socket.create_connection(("127.0.0.1", http.port), timeout=10) as sock:
        sock.sendall(b"POST /owntracks HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n"
                     b"Content-Type: application/json\r\n\r\n")
        assert b" 413 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "


def test_rate_limit_per_token(engine, db_url):
    running = RunningHttp(db_url, rate_per_s=5).start()
    try:
        token, other_token = make_token(engine, "web-hal"), make_token(engine, "web-ivy")
        s = requests.Session()
        codes = [s.get(running.url + "/api/v1/news-feed", headers={"Authorization": f"Bearer {token}"}).status_code
                 for _ in range(30)]
        assert 429 in codes and codes[0] == 200
        limited = s.get(running.url + "/api/v1/news-feed", headers={"Authorization": f"Bearer {token}"})
        if limited.status_code == 429:
            assert int(limited.headers["Retry-After"]) >= 1 and limited.json()["code"] == "rate_limited"
        other = s.get(running.url + "/api/v1/news-feed", headers={"Authorization": f"Bearer {other_token}"})
        assert other.status_code == 200  # another token has its own limit
    finally:
        running.close()


def test_rest_lifecycle_points_feed(http, engine):
    token = http.token("web-joe")
    auth = {"Authorization": f"Bearer {token}"}
    r = http.session.post(http.url + "/api/v1/activities", json={"sport": "run", "title": "Lunch <b>run</b>",
                                                                 "client_ref": "r-1"}, headers=auth)
    assert r.status_code == 201, r.text
    aid = r.json()["activity_id"]
    again = http.session.post(http.url + "/api/v1/activities", json={"sport": "run", "client_ref": "r-1"}, headers=auth)
    assert again.json()["activity_id"] == aid
    t0 = time.time() - 600
    r = http.session.patch(f"{http.url}/api/v1/activities/{aid}", json={"command": "start", "at": t0}, headers=auth)
    assert r.status_code == 200 and r.json()["status"] == "active"
    points = [{"seq": k, "t": t0 + 5 * k, "lat": LAT + 0.00015 * k, "lon": LON} for k in range(60)]
    r = http.session.post(http.url + "/api/v1/gps-logs", json={"activity_id": aid, "points": points}, headers=auth)
    assert r.status_code == 200, r.text
    ack = r.json()
    assert ack["stored"] == 60 and ack["duplicates"] == 0 and ack["stats"]["distance_m"] > 900
    r = http.session.post(http.url + "/api/v1/gps-logs", json={"activity_id": aid, "points": points[:5]}, headers=auth)
    assert r.json()["stored"] == 0 and r.json()["duplicates"] == 5
    for command in ("stop", "complete"):
        r = http.session.patch(f"{http.url}/api/v1/activities/{aid}", json={"command": command}, headers=auth)
        assert r.status_code == 200, r.text
    r = http.session.post(http.url + "/api/v1/gps-logs", json={"activity_id": aid, "points": points[:1]}, headers=auth)
    assert r.status_code == 409 and r.json()["code"] == "activity_closed"
    r = http.session.patch(f"{http.url}/api/v1/activities/{aid}", json={"command": "start"}, headers=auth)
    assert r.status_code == 409 and r.json()["code"] == "invalid_transition"
    feed = http.session.get(http.url + "/api/v1/news-feed", params={"limit": 5}, headers=auth)
    assert feed.status_code == 200
    items = feed.json()["items"]
    assert items[0]["activity_id"] == aid and items[0]["title"] == "Lunch <b>run</b>"
    assert abs(items[0]["distance_m"] - 59 * 0.00015 * 111_195) < 30


def test_rest_errors_map_to_statuses(http):
    mine, other = http.token("web-kai"), http.token("web-lee")
    auth = {"Authorization": f"Bearer {mine}"}
    r = http.session.post(http.url + "/api/v1/activities", json={"sport": "run"},
                          headers={"Authorization": f"Bearer {other}"})
    theirs = r.json()["activity_id"]
    cases = [
        ("post", "/api/v1/activities", b"{bad", 400, "bad_json"),
        ("post", "/api/v1/activities", b"[]", 400, "bad_message"),
        ("post", "/api/v1/activities", json.dumps({"sport": "swim"}).encode(), 400, "invalid_value"),
        ("post", "/api/v1/activities", json.dumps({}).encode(), 400, "missing_field"),
        ("patch", f"/api/v1/activities/{theirs}", json.dumps({"command": "start"}).encode(), 404, "not_found"),
        ("patch", "/api/v1/activities/abc", json.dumps({"command": "start"}).encode(), 400, "wrong_type"),
        ("patch", "/api/v1/activities/99999999999999999999999", json.dumps({"command": "start"}).encode(), 400, None),
        ("post", "/api/v1/gps-logs", json.dumps({"activity_id": theirs, "points": []}).encode(), 404, "not_found"),
        ("post", "/api/v1/gps-logs", json.dumps({"activity_id": theirs, "points": [{"seq": 0, "t": 1e9}] * 1001}).encode(),
         413, "batch_too_large"),
        ("get", "/api/v1/news-feed?limit=0", b"", 400, "invalid_value"),
        ("get", "/api/v1/news-feed?limit=ten", b"", 400, "wrong_type"),
        ("get", "/api/v1/news-feed?cursor=forged", b"", 400, "invalid_value"),
        ("get", "/api/v1/recommendations?kind=cars", b"", 400, "invalid_value"),
    ]
    for method, path, body, status, code in cases:
        r = http.session.request(method, http.url + path, data=body or None,
                                 headers={**auth, "Content-Type": "application/json"})
        assert r.status_code == status, (path, body[:60], r.status_code, r.text)
        if code is not None:
            assert r.json()["code"] == code, (path, r.text)


def test_recommendations_and_openapi(http):
    token = http.token("web-moe")
    auth = {"Authorization": f"Bearer {token}"}
    r = http.session.get(http.url + "/api/v1/recommendations", params={"kind": "routes", "limit": 5}, headers=auth)
    assert r.status_code == 200 and r.json() == {"kind": "routes", "items": []}
    r = http.session.get(http.url + "/api/v1/recommendations", params={"kind": "athletes"}, headers=auth)
    assert r.status_code == 200 and r.json()["kind"] == "athletes"
    doc = http.session.get(http.url + "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/api/v1/gps-logs" in doc["paths"]
    page = http.session.get(http.url + "/api/v1/docs")
    assert page.status_code == 200 and "<script" not in page.text and "/api/v1/news-feed" in page.text


def test_hostile_ids_limits_and_times_get_400_not_500(http):
    token = http.token("web-nia")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    aid = http.session.post(http.url + "/api/v1/activities", json={"sport": "run"}, headers=auth).json()["activity_id"]
    for path in ("/api/v1/activities/%C2%B2", "/api/v1/activities/%EF%BC%91", "/api/v1/activities/--5"):
        r = http.session.patch(http.url + path, data=b'{"command": "start"}', headers=auth)
        assert r.status_code == 400 and r.json()["code"] == "wrong_type", (path, r.text)
    for query in ("limit=--5", "limit=%C2%B2", "limit=1_0"):
        r = http.session.get(http.url + "/api/v1/news-feed?" + query, headers=auth)
        assert r.status_code == 400, (query, r.text)
    forged = base64.urlsafe_b64encode(b"1.0:99999999999999999999999").decode()
    r = http.session.get(http.url + "/api/v1/news-feed", params={"cursor": forged}, headers=auth)
    assert r.status_code == 400 and r.json()["code"] == "invalid_value"
    for at in (-1e12, -1e300, 1.0):
        r = http.session.patch(f"{http.url}/api/v1/activities/{aid}", json={"command": "start", "at": at}, headers=auth)
        assert r.status_code == 400 and r.json()["code"] == "invalid_value", (at, r.text)
    r = http.session.post(http.url + "/api/v1/activities", json={"sport": "run", "client_ref": "fixes:1:2"}, headers=auth)
    assert r.status_code == 400


def test_unknown_paths_and_methods_answer_in_the_error_shape(http):
    r = http.session.get(http.url + "/api/v1/nothing")
    assert r.status_code == 404 and r.json()["code"] == "no_route"
    r = http.session.delete(http.url + "/api/v1/gps-logs")
    assert r.status_code == 405 and r.json()["code"] == "method_not_allowed"
    r = http.session.patch(http.url + "/api/v1/activities/", json={"command": "start"}, allow_redirects=False)
    assert r.status_code == 404


def test_head_stores_nothing(http, engine):
    token = http.token("web-oli")
    r = http.session.head(http.url + "/", params={"id": token, "lat": LAT, "lon": LON})
    assert r.status_code == 200
    assert stored_points(engine, "web-oli") == 0


def test_a_flood_of_made_up_tokens_is_slowed_per_address(http):
    codes = [http.session.get(http.url + "/api/v1/news-feed", headers={"Authorization": f"Bearer junk{k}"}).status_code
             for k in range(60)]
    assert codes[0] == 401 and 429 in codes


def test_fixes_that_would_start_too_many_activities_are_refused(http, engine):
    token = http.token("web-pat")
    t0 = time.time() - 86_400
    locations = [{"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 700 * k)),
                  "coords": {"latitude": LAT, "longitude": LON + 0.001 * k}} for k in range(100)]
    r = http.session.post(http.url + "/", json={"device_id": token, "location": locations})
    assert r.status_code == 429 and "activities" in r.text
    assert activities_of(engine, "web-pat") == []
    r = http.session.post(http.url + "/", json={"device_id": token, "location": locations})
    assert r.status_code == 429  # sent again: still refused
    r = http.session.post(http.url + "/", json={"device_id": token, "location": locations[:5]})
    assert r.status_code == 200  # five sessions in one flush are a phone's, not a flood
    assert len(activities_of(engine, "web-pat")) == 5


def test_a_body_that_never_arrives_is_cut(http, monkeypatch):
    import realtime.http.app as app_module

    monkeypatch.setattr(app_module, "BODY_TIMEOUT_S", 1.0)
    with socket.create_connection(("127.0.0.1", http.port), timeout=10) as sock:
        sock.sendall(b"POST /owntracks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                     b"Content-Type: application/json\r\n\r\n{")
        assert b" 408 " in sock.recv(4096).split(b"\r\n", 1)[0] + b" "


def test_a_busy_database_delays_a_fix_never_fails_it(http, engine):
    """Another writer holds the lock the fix commit needs: the answer waits (the loop goes on
    serving) and comes once the lock is released."""
    import threading

    from sqlalchemy import text

    token = http.token("web-quin")
    answers = []
    with engine.connect() as other:
        if engine.dialect.name == "sqlite":
            other.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            other.begin()
            other.execute(text("SELECT id FROM device_tokens FOR UPDATE"))
        sender = threading.Thread(target=lambda: answers.append(requests.get(
            http.url + "/", params={"id": token, "lat": LAT, "lon": LON}, timeout=30)))
        sender.start()
        time.sleep(0.6)
        assert not answers  # still waiting for the lock
        assert requests.get(http.url + "/healthz", timeout=5).status_code == 200  # the loop is not stalled
        other.rollback()
    sender.join(30)
    assert answers and answers[0].status_code == 200, answers
    assert stored_points(engine, "web-quin") == 1


def test_a_mass_start_is_stored_whole_a_few_starts_per_transaction(http, engine):
    """Thirty phones send their first fix at once (a race start): every one is stored, in
    transactions that start at most a few activities each."""
    from concurrent.futures import ThreadPoolExecutor

    tokens = [http.token(f"web-race{k:02d}") for k in range(30)]
    t0 = int(time.time()) - 10

    def first_fix(token: str) -> int:
        return requests.get(http.url + "/", params={"id": token, "timestamp": t0, "lat": LAT, "lon": LON},
                            timeout=60).status_code

    with ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(first_fix, tokens))
    assert codes == [200] * 30
    assert all(len(activities_of(engine, f"web-race{k:02d}")) == 1 for k in range(30))


def test_metrics_count_the_rest_apis_points(http):
    """GET /metrics (Prometheus text): the points the REST API stored, resends not counted."""
    from prometheus_client.parser import text_string_to_metric_families

    def points_stored() -> float:
        r = http.session.get(http.url + "/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        samples = {s.name: s.value for f in text_string_to_metric_families(r.text) for s in f.samples}
        return samples["tracker_ingest_points_total"]

    before = points_stored()
    auth = {"Authorization": f"Bearer {http.token('web-metrics')}"}
    aid = http.session.post(http.url + "/api/v1/activities", json={"sport": "run"}, headers=auth).json()["activity_id"]
    t0 = time.time() - 600
    http.session.patch(f"{http.url}/api/v1/activities/{aid}", json={"command": "start", "at": t0}, headers=auth)
    points = [{"seq": k, "t": t0 + 5 * k, "lat": LAT + 0.00015 * k, "lon": LON} for k in range(30)]
    for part in (points, points[:5]):
        assert http.session.post(http.url + "/api/v1/gps-logs", json={"activity_id": aid, "points": part},
                                 headers=auth).status_code == 200
    assert points_stored() - before == 30


def _archived_phone(http, engine, tmp_path, monkeypatch, name: str):
    """A phone's 30 fixes 400 days ago, completed and archived: (token, activity id, first fix's time)."""
    from core.storage import tiers
    from core.storage.points import archive
    from tests.realtime.http.conftest import complete_all

    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TRACKER_ARCHIVE_URL", raising=False)
    token = http.token(name)
    t0 = time.time() - 400 * 86400
    locations = [{"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 5 * k)),
                  "coords": {"latitude": LAT + 0.0001 * k, "longitude": LON}} for k in range(30)]
    r = http.session.post(http.url + "/", json={"device_id": token, "location": locations})
    assert r.status_code == 200, r.text
    (activity,) = activities_of(engine, name)
    complete_all(sessionmaker(engine), 600.0, now=t0 + 30 * 5 + 700)
    assert tiers.archive_activity(sessionmaker(engine), archive(), activity.id) == 30
    return token, activity.id, t0


def test_a_late_fix_for_an_archived_activity_is_stored_once_its_points_are_back(http, engine, tmp_path, monkeypatch):
    """A phone flushing a fix for an activity whose points are archived: the service brings
    them back off its event loop, on a connection that waits its turn, then stores the fix;
    the activity is whole and in the table."""
    import core.devices.fixes as fixes
    from core.storage.points import count_points

    token, activity_id, t0 = _archived_phone(http, engine, tmp_path, monkeypatch, "web-old")
    threads = []
    real = fixes.restore_activity
    monkeypatch.setattr(fixes, "restore_activity", lambda *a: (threads.append(threading.current_thread()), real(*a))[1])
    late = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 150)),
            "coords": {"latitude": LAT + 0.003, "longitude": LON}}
    r = http.session.post(http.url + "/", json={"device_id": token, "location": [late]})
    assert r.status_code == 200, r.text
    assert threads and all(t is not http.thread for t in threads), "brought back on the event loop's thread"
    with Session(engine) as s:
        assert s.get(Activity, activity_id).points_tier == "hot" and count_points(s, activity_id) == 31


def test_an_archive_that_cannot_be_read_fails_only_its_late_fix(http, engine, tmp_path, monkeypatch):
    """The archived points cannot be brought back (the object store is down): the late fix
    is answered with an error to send it again, not left hanging, and other phones' fixes
    are stored as before."""
    import core.devices.fixes as fixes
    from core.storage.points import archive

    token, activity_id, t0 = _archived_phone(http, engine, tmp_path, monkeypatch, "web-lost")
    real = fixes.restore_activity

    def unreachable(*_args):
        raise OSError("the archive is unreachable")

    monkeypatch.setattr(fixes, "restore_activity", unreachable)
    try:
        late = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 150)),
                "coords": {"latitude": LAT + 0.003, "longitude": LON}}
        r = http.session.post(http.url + "/", json={"device_id": token, "location": [late]}, timeout=30)
        assert r.status_code >= 500 and "resend later" in r.text, r.text
        other = http.token("web-fresh")
        r = http.session.post(http.url + "/", json={"device_id": other, "location": [
            {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 30)),
             "coords": {"latitude": LAT, "longitude": LON}}]})
        assert r.status_code == 200, r.text
        assert stored_points(engine, "web-fresh") == 1
        with Session(engine) as s:
            assert s.get(Activity, activity_id).points_tier == "cold"
    finally:
        # Back in the table while this test's archive is still the one configured: the
        # database is shared with the next tests.
        real(sessionmaker(engine), archive(), activity_id)


def test_a_late_fix_whose_activity_is_archived_again_and_again_is_stored_in_the_end(http, engine, tmp_path,
                                                                                    monkeypatch):
    """The tiering job archiving the activity again each time it comes back: after
    ``RESTORE_TRIES`` rounds the fix is stored with the points brought back in its own
    transaction, and answered; it does not wait for ever."""
    import core.devices.fixes as fixes
    from core.storage import tiers
    from core.storage.points import count_points

    token, activity_id, t0 = _archived_phone(http, engine, tmp_path, monkeypatch, "web-again")
    real = fixes.restore_activity
    restores = []

    def archived_again(Session_, archive_, activity_id_, *rest):
        restores.append(real(Session_, archive_, activity_id_, *rest))
        tiers.archive_activity(Session_, archive_, activity_id_)  # the tiering job, meanwhile
        return restores[-1]

    monkeypatch.setattr(fixes, "restore_activity", archived_again)
    late = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 150)),
            "coords": {"latitude": LAT + 0.003, "longitude": LON}}
    r = http.session.post(http.url + "/", json={"device_id": token, "location": [late]}, timeout=60)
    assert r.status_code == 200, r.text
    assert len(restores) <= 2 * fixes.RESTORE_TRIES
    with Session(engine) as s:
        assert s.get(Activity, activity_id).points_tier == "hot" and count_points(s, activity_id) == 31


def test_a_phones_later_fixes_wait_behind_its_fixes_for_an_archived_activity(http, engine, tmp_path, monkeypatch):
    """A phone's offline buffer of 250 fixes for an archived activity, more than one batch:
    the second batch waits behind the first while the points come back, so every fix joins
    the one activity instead of starting another."""
    token, activity_id, t0 = _archived_phone(http, engine, tmp_path, monkeypatch, "web-buffer")
    late = [{"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + 150 + 5 * k)),
             "coords": {"latitude": LAT + 0.003 + 0.0001 * k, "longitude": LON}} for k in range(250)]
    r = http.session.post(http.url + "/", json={"device_id": token, "location": late}, timeout=60)
    assert r.status_code == 200, r.text
    assert [a.id for a in activities_of(engine, "web-buffer")] == [activity_id]
    assert stored_points(engine, "web-buffer") == 30 + 250
