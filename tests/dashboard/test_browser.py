"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a running
app on demo data. Screenshots of every page land in tests/artifacts/screenshots."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import SHARED_TRACKS, need
from tests.dashboard.conftest import (
    APP,
    LIVE_TITLE,
    PRIVATE_LIVE_TITLE,
    PRIVATE_TITLE,
    XSS_COMMENT,
    XSS_TITLE,
)

ROOT = APP.parent.parent
SHOTS = ROOT / "tests" / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("TRACKER_TEST_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 120_000  # generous: CI machines are shared and sometimes slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(world):
    port = _free_port()
    env = dict(os.environ, TRACKER_DATABASE_URL=world.url, TRACKER_DATA_DIR=str(world.data_dir),
               TRACKER_TILE_URL="http://127.0.0.1:9/{z}/{x}/{y}.png")  # no tiles: the route must still draw
    env.pop("TRACKER_REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited: {proc.stdout.read().decode()[-2000:]}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    need(Path(CHROMIUM).exists(), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    pg.dialogs = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    yield pg
    try:  # the last state of every test, to see where a failure stopped
        pg.screenshot(path=str(SHOTS / f"last-{request.node.name}.png"), full_page=True)
    except Exception:  # noqa: BLE001 - a closed page has nothing to show
        pass
    context.close()


def settle(pg) -> None:
    """Wait until Streamlit has finished running the page's script."""
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=TIMEOUT_MS)
    pg.wait_for_timeout(300)


def chart(pg):
    """The page's plotly chart, drawn in its own frame (dashboard.ui.plotly_chart)."""
    return pg.frame_locator("iframe[srcdoc*='tracker-chart']").first.locator(".js-plotly-plot .main-svg")


def decide(pg, item, note: str, button: str) -> None:
    """Write a moderator's note into an item's form and press one of its buttons."""
    from playwright.sync_api import expect

    box = item.get_by_label("Note to the athlete (optional)")
    box.fill(note)
    expect(box).to_have_value(note)
    item.get_by_role("button", name=button).click()
    settle(pg)


def shot(pg, name: str) -> None:
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(pg, url: str, username: str, password: str) -> None:
    pg.goto(url)
    pg.get_by_label("Username").first.fill(username)
    pg.get_by_label("Password").first.fill(password)
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_role("heading", name="Feed").wait_for()
    settle(pg)


def everything_text(pg) -> str:
    """The visible text of the page and of every frame in it (maps, components)."""
    texts = [pg.inner_text("body")]
    for frame in pg.frames[1:]:
        try:
            texts.append(frame.inner_text("body"))
        except Exception:  # noqa: BLE001 - a frame that went away has no text to leak
            pass
    return "\n".join(texts)


def test_athlete_journey(page, app_url, world, tmp_path):
    pg = page
    pg.goto(app_url)
    pg.get_by_label("Username").first.wait_for()
    shot(pg, "00-sign-in")
    sign_in(pg, app_url, "alice", "alice-demo-pass")

    # The feed: friends' activities, newest first, hostile text shown literally.
    cards = pg.locator("[class*='st-key-card_']")
    cards.nth(9).wait_for()
    pg.get_by_role("link", name=XSS_TITLE).wait_for()
    pg.get_by_role("button", name="Load more").wait_for()
    settle(pg)
    assert cards.count() == 10
    text = pg.inner_text("main")
    assert XSS_TITLE in text
    assert pg.locator("img[src='x']").count() == 0
    import re
    stamps = re.findall(r"\w{3} \d{2} \w{3} \d{4}, \d{2}:\d{2} UTC", text)
    from datetime import datetime
    dates = [datetime.strptime(s, "%a %d %b %Y, %H:%M UTC") for s in stamps]
    assert len(dates) == 10 and dates == sorted(dates, reverse=True)
    shot(pg, "01-feed")

    # A sign-in survives a reload.
    pg.reload()
    pg.get_by_role("heading", name="Feed").wait_for()
    settle(pg)

    # Comment on mallory's activity; the hostile comment already there stays text.
    card = pg.locator(f".st-key-card_{world.xss_id}")
    card.get_by_text("1 comment", exact=True).click()
    assert XSS_COMMENT in card.inner_text()
    card.get_by_label("Add a comment").fill("Lovely route <b>really</b>")
    card.get_by_role("button", name="Post").click()
    settle(pg)
    pg.locator(f".st-key-card_{world.xss_id}").get_by_text("Lovely route <b>really</b>").wait_for()

    # Open it: the route line itself is drawn inside the map, with no tiles reachable.
    pg.locator(f".st-key-card_{world.xss_id}").get_by_role("link").first.click()
    pg.get_by_role("heading", name="Route").wait_for()
    settle(pg)
    frame = pg.frame_locator("iframe[title='streamlit_folium.st_folium']").first
    frame.locator("path.route-line").first.wait_for(state="attached")
    assert frame.locator("path.route-line").count() >= 1
    assert frame.locator(".km-marker").count() >= 3
    assert frame.locator("path.start-marker").count() == 1 and frame.locator("path.finish-marker").count() == 1
    chart(pg).first.wait_for()
    # One chart per recorded series (pace and elevation here), stacked on a shared distance axis.
    assert chart(pg).locator("xpath=..").locator("g.trace.scatter").count() >= 2
    assert "Splits" in pg.inner_text("main")
    assert pg.locator("table.tracker-table").first.locator("tbody tr").count() >= 10  # about 10.8 km
    assert XSS_TITLE in pg.inner_text("h1")
    shot(pg, "02-activity")
    # The GPX is written when asked for: the whole track, named after the activity.
    with pg.expect_download() as download:
        pg.get_by_role("button", name="Download GPX").click()
    gpx = Path(download.value.path()).read_text()
    assert download.value.suggested_filename == f"activity-{world.xss_id}.gpx"
    assert gpx.count("<trkpt") > 100 and "&lt;img src=x onerror=alert(1)&gt;" in gpx

    # Upload: a real device file when the corpus is here, and a generated one; then a duplicate.
    from core.demo import synthetic_track
    from core.fileio import to_gpx
    files = [tmp_path / "evening-ride.gpx"]
    files[0].write_text(to_gpx(synthetic_track(random.Random(42), "ride", time.time() - 9000, 46.05, 14.5, 45, 7.2),
                               "Evening ride"))
    real = sorted(SHARED_TRACKS.glob("*.gpx"))[:1] if SHARED_TRACKS.is_dir() else []
    for path in real:
        shutil.copy(path, tmp_path / path.name)
        files.append(tmp_path / path.name)
    pg.goto(f"{app_url}/upload")
    pg.get_by_role("heading", name="Upload activities").wait_for()
    settle(pg)
    pg.locator("input[type='file']").set_input_files([str(f) for f in files])
    pg.get_by_text(files[0].name).first.wait_for()
    pg.get_by_role("button", name="Import").click()
    pg.get_by_text("imported as a ride").first.wait_for()
    settle(pg)
    shot(pg, "03-upload")
    pg.locator("input[type='file']").set_input_files([str(files[0])])
    pg.get_by_text(files[0].name).first.wait_for()
    pg.get_by_role("button", name="Import").click()
    pg.get_by_text("already imported").first.wait_for()

    # The leaderboard, with alice's own rank.
    pg.goto(f"{app_url}/leaderboards")
    pg.get_by_text("Your rank").wait_for()
    settle(pg)
    chart(pg).first.wait_for()
    assert "Mallory <script>alert(2)</script>" in pg.inner_text("main")
    shot(pg, "04-leaderboards")

    for name in ("stats", "live", "settings"):
        pg.goto(f"{app_url}/{name}")
        pg.get_by_role("heading", level=1).first.wait_for()
        settle(pg)
        if name == "stats":
            pg.frame_locator("iframe[title='streamlit_folium.st_folium']").first.locator(
                "path.heat-line").first.wait_for(state="attached")
            chart(pg).first.wait_for()  # the weekly volume
        if name == "live":
            pg.get_by_text(LIVE_TITLE).wait_for()
            pg.frame_locator("iframe[title='streamlit_folium.st_folium']").first.locator(
                "path.live-marker").first.wait_for(state="attached")
        shot(pg, f"05-{name}")

    # Sign out: the sign-in page, also after a reload.
    pg.get_by_role("button", name="Sign out", exact=True).click()
    pg.get_by_label("Username").first.wait_for()
    pg.reload()
    pg.get_by_label("Username").first.wait_for()
    settle(pg)
    assert "Feed" not in pg.inner_text("body")
    assert pg.dialogs == []


def test_private_activity_is_nowhere_for_another_athlete(page, app_url, world):
    pg = page
    sign_in(pg, app_url, "bob", "bob-demo-pass")
    seen = everything_text(pg)
    assert "Alice Runner" in seen  # bob follows alice: her shared activities are there
    assert PRIVATE_TITLE not in seen
    for path in ("", f"activity?id={world.private_id}", "live", "stats", "upload", "settings", "athletes",
                 "leaderboards"):
        pg.goto(f"{app_url}/{path}")
        pg.get_by_role("heading", level=1).first.wait_for()
        settle(pg)
        seen = everything_text(pg)
        assert "Page not found" not in seen
        assert PRIVATE_TITLE not in seen and PRIVATE_LIVE_TITLE not in seen, path
    pg.goto(f"{app_url}/activity?id={world.private_id}")
    pg.get_by_text("not shared with you").wait_for()
    shot(pg, "06-private-refused")
    assert pg.dialogs == []


def test_usable_on_a_phone_width_screen(browser, app_url, world):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    try:
        sign_in(pg, app_url, "alice", "alice-demo-pass")
        for path in ("", f"activity?id={world.xss_id}", "leaderboards"):
            pg.goto(f"{app_url}/{path}")
            pg.get_by_role("heading", level=1).first.wait_for()
            settle(pg)
            overflow = pg.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{path}: {overflow}px wider than the screen"
            assert "Page not found" not in pg.inner_text("body")
            shot(pg, f"07-phone-{path.split('?')[0] or 'feed'}")
    finally:
        context.close()


def _flagged_drives(world) -> dict:
    """Two car drives saved as runs by a fresh athlete, scored (rules only) so they wait
    for review; returns their ids by title."""
    from sqlalchemy.orm import Session

    from core.accounts import create_user
    from core.activities import record_track
    from core.anomaly.store import score_activity
    from core.db import make_engine
    from core.demo import synthetic_track

    engine = make_engine(world.url)
    ids = {}
    with Session(engine) as s, s.begin():
        driver = create_user(s, f"driver{random.randrange(10**6)}", "Dana Driver", password="driver-pass-1")
        for k, title in enumerate(("Browser drive A", "Browser drive B")):
            track = synthetic_track(random.Random(70 + k), "run", time.time() - (k + 2) * 3600, 38.73, -9.15, 25, 14.0)
            a = record_track(s, driver, track, title=title, visibility="public", source="demo")
            assert score_activity(s, a, None).status == "flagged"
            ids[title] = a.id
        ids["username"] = driver.username
    engine.dispose()
    return ids


def test_moderator_dismisses_and_confirms_flags_and_the_athlete_sees_why(page, app_url, world):
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from core.db import make_engine
    from core.models import Activity, ModerationDecision

    ids = _flagged_drives(world)
    pg = page
    # An athlete has no such page, by menu or by address.
    sign_in(pg, app_url, "alice", "alice-demo-pass")
    assert "Flagged activities" not in pg.inner_text("body")
    pg.goto(f"{app_url}/moderation")
    pg.get_by_role("heading", level=1).first.wait_for()
    settle(pg)
    seen = everything_text(pg)
    assert "does not seem to exist" in seen  # Streamlit runs the main page instead
    assert "Flagged activities" not in seen and "Browser drive" not in seen
    pg.goto(app_url)
    pg.get_by_role("heading", name="Feed").wait_for()
    settle(pg)
    pg.get_by_role("button", name="Sign out").click()
    pg.get_by_label("Username").first.wait_for()

    sign_in(pg, app_url, "moderator", "moderator-demo-pass")
    pg.get_by_role("link", name="Flagged activities").click()
    pg.get_by_role("heading", name="Flagged activities").wait_for()
    settle(pg)
    a, b = (pg.locator(f".st-key-review_{ids[t]}") for t in ("Browser drive A", "Browser drive B"))
    a.wait_for()
    b.wait_for()
    assert "km/h" in a.inner_text() and "Dana Driver" in a.inner_text()
    # The suspicious stretch is drawn over the route on the item's map, and the speed profile is there.
    # Both items' maps and charts drawn first: one growing late would move the other's buttons
    # under the click.
    for item in (a, b):
        frame = item.frame_locator("iframe[title='streamlit_folium.st_folium']").first
        frame.locator("path.suspicious-line").first.wait_for(state="attached")
        item.locator(".js-plotly-plot").first.wait_for()
    settle(pg)
    shot(pg, "08-moderation")

    decide(pg, a, "GPS looked fine, legitimate", "Dismiss: legitimate")
    pg.locator(f".st-key-review_{ids['Browser drive A']}").wait_for(state="detached")
    b = pg.locator(f".st-key-review_{ids['Browser drive B']}")
    # The page has run again: wait until the remaining item is drawn before typing into it.
    b.locator(".js-plotly-plot").first.wait_for()
    settle(pg)
    decide(pg, b, "This was a car, not a run", "Confirm: irregular")
    settle(pg)
    b.wait_for(state="detached")
    assert "Confirmed" in pg.inner_text("main")

    engine = make_engine(world.url)
    with Session(engine) as s:
        decisions = {d.activity_id: d for d in s.scalars(select(ModerationDecision).where(
            ModerationDecision.activity_id.in_([ids["Browser drive A"], ids["Browser drive B"]])))}
        assert decisions[ids["Browser drive A"]].action == "dismiss"
        assert decisions[ids["Browser drive B"]].action == "confirm"
        assert decisions[ids["Browser drive B"]].moderator_id is not None
        assert decisions[ids["Browser drive B"]].note == "This was a car, not a run"
        assert not s.get(Activity, ids["Browser drive A"]).held and s.get(Activity, ids["Browser drive B"]).held
    engine.dispose()

    # The athlete sees why the confirmed one is out of the leaderboards, with the note.
    pg.get_by_role("button", name="Sign out").click()
    pg.get_by_label("Username").first.wait_for()
    sign_in(pg, app_url, ids["username"], "driver-pass-1")
    pg.goto(f"{app_url}/activity?id={ids['Browser drive B']}")
    pg.get_by_text("confirmed as irregular").wait_for()
    pg.get_by_text("This was a car, not a run").wait_for()
    text = pg.inner_text("main")
    assert "km/h" in text and "This was a car, not a run" in text
    shot(pg, "09-flagged-activity")
