"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a running
app on demo data, with athletes whose names, titles and comments are hostile text. Screenshots
of every page land in tests/artifacts/screenshots."""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import SHARED_TRACKS
from tests.dashboard.conftest import (
    APP,
    DISCOVER_PASSWORD,
    HOSTILE,
    LIVE_TITLE,
    PRIVATE_LIVE_TITLE,
    PRIVATE_TITLE,
    WATCHER_PASSWORD,
    XSS_COMMENT,
    XSS_NAME,
    XSS_TITLE,
    streamlit_server,
)

ROOT = APP.parent.parent
SHOTS = ROOT / "tests" / "artifacts" / "screenshots"
TIMEOUT_MS = 120_000  # generous: CI machines are shared and sometimes slow


@pytest.fixture(scope="module")
def app_url(world, badge_world):  # the awards exist before the server caches anything
    env = dict(os.environ, TRACKER_DATABASE_URL=world.url, TRACKER_DATA_DIR=str(world.data_dir),
               TRACKER_TILE_URL="http://127.0.0.1:9/{z}/{x}/{y}.png")  # no tiles: the route must still draw
    env.pop("TRACKER_REDIS_URL", None)
    with streamlit_server(APP, env=env) as url:
        yield url


@pytest.fixture
def page(browser, request):
    SHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    pg.dialogs, pg.errors = [], []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    # Script errors in the page or any frame in it (maps, charts). Resources that fail to
    # load are expected: the tile server is unreachable on purpose.
    pg.on("pageerror", lambda e: pg.errors.append(f"uncaught: {e}"))
    # Streamlit's notice on signing out while at a page a signed-out visitor has not is no error.
    pg.on("console", lambda m: m.type == "error" and not m.text.startswith(
        ("Failed to load resource", "The page that you have requested does not seem to exist"))
          and pg.errors.append(m.text))
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
    # While the page runs again after the previous decision, Streamlit may still show that
    # item's stale form beside this one's: wait until only this item's own box is there.
    expect(box).to_have_count(1, timeout=TIMEOUT_MS)
    box.fill(note)
    expect(box).to_have_value(note)
    item.get_by_role("button", name=button).click()
    settle(pg)


def shot(pg, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def username_box(pg):
    """The sign-in form's username box: by its key, as the sign-up form's box and its help
    button are also labelled "Username" and may come first in the page."""
    return pg.locator(".st-key-signin_username input")


def sign_in(pg, url: str, username: str, password: str) -> None:
    pg.goto(url)
    username_box(pg).fill(username)
    pg.locator(".st-key-signin_password input").fill(password)
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_role("heading", name="Feed").wait_for()
    settle(pg)


# Characters that draw nothing: the word joiners dashboard.escape.markdown puts into text
# Streamlit would otherwise rewrite, and byte-order marks (trimmed from the ends of bold names).
_INVISIBLE = str.maketrans("", "", "\u2060\ufeff")


def visible(text: str) -> str:
    """Text as a reader sees it: without the characters that draw nothing."""
    return text.translate(_INVISIBLE)


def everything_text(pg) -> str:
    """The visible text of the page and of every frame in it (maps, components)."""
    texts = [pg.inner_text("body")]
    for frame in pg.frames[1:]:
        try:
            texts.append(frame.inner_text("body"))
        except Exception:  # noqa: BLE001 - a frame that went away has no text to leak
            pass
    return visible("\n".join(texts))


def test_athlete_journey(page, app_url, world, tmp_path):
    pg = page
    pg.goto(app_url)
    username_box(pg).wait_for()
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
    assert XSS_COMMENT in visible(card.inner_text())
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
    from core.synthetic.tracks import synthetic_track
    from core.tracks.formats.gpx import to_gpx
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
    files_input = pg.locator("input[type='file']").first  # the activity files (the Strava archive's is below)
    files_input.set_input_files([str(f) for f in files])
    pg.get_by_text(files[0].name).first.wait_for()
    pg.get_by_role("button", name="Import", exact=True).click()
    pg.get_by_text("imported as a ride").first.wait_for()
    settle(pg)
    shot(pg, "03-upload")
    files_input.set_input_files([str(files[0])])
    pg.get_by_text(files[0].name).first.wait_for()
    pg.get_by_role("button", name="Import", exact=True).click()
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

    # Sign out: the sign-in page, also after loading the app again (its address, not the
    # signed-in page's, which a signed-out visitor has not: Streamlit would say so).
    pg.get_by_role("button", name="Sign out", exact=True).click()
    username_box(pg).wait_for()
    pg.goto(app_url)
    username_box(pg).wait_for()
    settle(pg)
    assert "Feed" not in pg.inner_text("body")
    assert pg.dialogs == [] and pg.errors == []


def test_private_activity_is_nowhere_for_another_athlete(page, app_url, world):
    pg = page
    sign_in(pg, app_url, "bob", "bob-demo-pass")
    seen = everything_text(pg)
    assert "Alice Runner" in seen  # bob follows alice: her shared activities are there
    assert PRIVATE_TITLE not in seen
    for path in ("", f"activity?id={world.private_id}", "live", "stats", "upload", "settings", "athletes",
                 "leaderboards", "discover"):
        pg.goto(f"{app_url}/{path}")
        pg.get_by_role("heading", level=1).first.wait_for()
        settle(pg)
        seen = everything_text(pg)
        assert "Page not found" not in seen
        assert PRIVATE_TITLE not in seen and PRIVATE_LIVE_TITLE not in seen, path
    pg.goto(f"{app_url}/activity?id={world.private_id}")
    pg.get_by_text("not shared with you").wait_for()
    shot(pg, "06-private-refused")
    assert pg.dialogs == [] and pg.errors == []


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

    from core.accounts.users import create_user
    from core.activities.imports import record_track
    from core.anomaly.scoring import score_activity
    from core.storage.engine import make_engine
    from core.synthetic.tracks import synthetic_track

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

    from core.activities.tables import Activity
    from core.anomaly.tables import ModerationDecision
    from core.storage.engine import make_engine

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
    username_box(pg).wait_for()

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
    username_box(pg).wait_for()
    sign_in(pg, app_url, ids["username"], "driver-pass-1")
    pg.goto(f"{app_url}/activity?id={ids['Browser drive B']}")
    pg.get_by_text("confirmed as irregular").wait_for()
    pg.get_by_text("This was a car, not a run").wait_for()
    text = pg.inner_text("main")
    assert "km/h" in text and "This was a car, not a run" in text
    shot(pg, "09-flagged-activity")


# What the hostile athletes are called on the pages: the name as written, or @username when
# it is blank; an activity without a title is "Untitled".
def hostile_names(hw) -> dict[str, str]:
    from dashboard.ui import who

    return {key: who(text, hw.usernames[key]) for key, text in HOSTILE.items()}


HOSTILE_TITLES = {key: text or "Untitled" for key, text in HOSTILE.items()}


def frames_of(pg, url_part: str):
    return [f for f in pg.frames[1:] if url_part in f.url]


def nothing_ran(pg, where: str) -> None:
    """No dialog, no script error, and no element made of hostile text, in the page or any
    frame in it."""
    assert pg.dialogs == [], (where, pg.dialogs)
    assert pg.errors == [], (where, pg.errors)
    for frame in pg.frames:
        try:
            made = frame.locator("img[src='x'], svg[onload], [onerror], [onmouseover], a[href^='javascript']").count()
        except Exception:  # noqa: BLE001 - a frame drawn again as we looked has nothing left to check
            continue
        assert made == 0, (where, frame.url)


def written(pg, texts, where: str) -> None:
    """Every one of ``texts`` is on the page (or in a frame of it) exactly as written; waits
    for a page still arriving (Streamlit sends its elements as the script runs)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        seen = everything_text(pg)
        missing = [t[:60] for t in texts if t and visible(t) not in seen]
        if not missing or time.monotonic() > deadline:
            break
        pg.wait_for_timeout(500)
    assert not missing, (where, missing)


def visit(pg, url: str, where: str) -> None:
    pg.goto(url)
    pg.get_by_role("heading", level=1).first.wait_for()
    settle(pg)
    nothing_ran(pg, where)


def test_hostile_text_shows_as_written_on_every_page_for_a_follower_and_a_moderator(page, app_url, world,
                                                                                    hostile_world):
    """Athletes named, titling and commenting with hostile text, seen by an athlete who follows
    them all (feed, their activities, live, stats, upload, settings, athletes, leaderboards)
    and by a moderator (the same pages and the flagged activities): nothing runs, every
    text shows as written, in the maps' and charts' frames too."""
    from sqlalchemy.orm import Session

    from core.accounts.users import user_by_name
    from core.social.leaderboards import leaderboard
    from core.storage.engine import make_engine
    from dashboard.ui import CHART_LABEL_CHARS, abbreviate, who

    hw, pg = hostile_world, page
    names = hostile_names(hw)
    sign_in(pg, app_url, hw.watcher, WATCHER_PASSWORD)
    nothing_ran(pg, "feed")

    # The feed, every page of it: each athlete's two runs with their names and titles.
    cards = "[class*='st-key-card_']"
    end, more = pg.get_by_text("You have reached the end of your feed"), pg.get_by_role("button", name="Load more")
    while True:
        settle(pg)  # as a reader does: the page has finished drawing before the next click
        end.or_(more).first.wait_for()  # the end of a page is drawn after its cards
        if end.count():
            break
        shown = pg.locator(cards).count()
        more.click()
        pg.wait_for_function(f"() => document.querySelectorAll(\"{cards}\").length > {shown}")
    assert pg.locator(cards).count() == 1 + 2 * len(HOSTILE)  # the watcher's run and two of each athlete's
    written(pg, list(names.values()) + list(HOSTILE_TITLES.values()), "feed")
    # Their comments on the watcher's own run, each under its author's name.
    card = pg.locator(f".st-key-card_{hw.watcher_run_id}")
    card.get_by_text(f"{len(HOSTILE)} comments", exact=True).click()
    card.get_by_text(HOSTILE["img"], exact=True).wait_for()
    written(pg, list(HOSTILE.values()), "comments")  # each comment, and its author's name: the same text
    nothing_ran(pg, "feed")
    shot(pg, "10-hostile-feed")

    # Each of their activities: title and name, the route drawn in its map frame.
    for key, activity_id in hw.runs.items():
        visit(pg, f"{app_url}/activity?id={activity_id}", f"activity {key}")
        assert visible(HOSTILE_TITLES[key]) in visible(pg.inner_text("h1")), key
        written(pg, [HOSTILE[key]], f"activity {key}")  # the athlete's name as stored
        if key == "backquote":
            frame = pg.frame_locator("iframe[title='streamlit_folium.st_folium']").first
            frame.locator("path.route-line").first.wait_for(state="attached")
            chart(pg).first.wait_for()
            nothing_ran(pg, f"activity {key}")
            shot(pg, "11-hostile-activity")

    # Live: a marker per athlete where they are, their name and title in its tooltip as written.
    visit(pg, f"{app_url}/live", "live")
    frame = pg.frame_locator("iframe[title='streamlit_folium.st_folium']").first
    frame.locator("path.live-marker").nth(len(HOSTILE) - 1).wait_for(state="attached")
    assert frame.locator("path.live-marker").count() == len(HOSTILE)
    (live_frame,) = frames_of(pg, "streamlit_folium")
    tips = live_frame.evaluate("""() => { const out = []; window.map.eachLayer(l => {
        const t = l.getTooltip && l.getTooltip(); if (t) { const c = t.getContent();
        out.push([l.getLatLng().lat, l.getLatLng().lng, c.querySelector('.live-name').textContent,
                  c.querySelector('.live-title').textContent]); } }); return out; }""")
    by_name = {name: (lat, lon, title) for lat, lon, name, title in tips}
    assert sorted(by_name) == sorted(names.values())
    for k, key in enumerate(HOSTILE):
        lat, lon, title = by_name[names[key]]
        assert title == HOSTILE_TITLES[key]
        # Where this athlete recorded (conftest.hostile_world): each on a spot of their own.
        assert abs(lat - (38.74 + (k // 4) * 0.01)) < 0.004 and abs(lon - (-9.20 + (k % 4) * 0.012)) < 0.001, key
    frame.locator("path.live-marker").first.hover()
    frame.locator(".leaflet-tooltip .live-name").wait_for()
    assert frame.locator(".leaflet-tooltip .live-name").text_content() in names.values()
    written(pg, list(names.values()) + list(HOSTILE_TITLES.values()), "live")
    nothing_ran(pg, "live")
    shot(pg, "12-hostile-live")

    # My stats: the watcher's own hostile title beside their best kilometre.
    visit(pg, f"{app_url}/stats", "stats")
    chart(pg).first.wait_for()
    written(pg, [HOSTILE["script"]], "stats")
    for path in ("upload", "settings"):
        visit(pg, f"{app_url}/{path}", path)
    written(pg, [HOSTILE["img"]], "settings")  # the device's name

    # Athletes: everyone followed, by name and @username.
    visit(pg, f"{app_url}/athletes", "athletes")
    written(pg, [t for t in HOSTILE.values() if t.strip()] + [f"@{u}" for u in hw.usernames.values()], "athletes")

    # Leaderboards among the athletes followed: the chart's labels and the table.
    visit(pg, f"{app_url}/leaderboards", "leaderboards")
    pg.get_by_text("Athletes I follow", exact=True).click()
    settle(pg)
    engine = make_engine(world.url)
    with Session(engine) as s:
        board = leaderboard(s, None, "week", "run", "friends", user_by_name(s, hw.watcher).id, 10)
    engine.dispose()
    on_board = [who(e.name, e.username) for e in board.entries]
    assert len(on_board) >= 5
    chart(pg).first.wait_for()
    # The click reruns the page; until the rerun has drawn the new chart, the global board's
    # chart may still be there, so its labels are read until they are the followed athletes'.
    missing, waited = on_board, 0
    while missing and waited < TIMEOUT_MS:
        labels = pg.frame_locator("iframe[srcdoc*='tracker-chart']").first.locator(".ytick text").all_text_contents()
        missing = [n for n in on_board if not any(abbreviate(n, CHART_LABEL_CHARS) in label for label in labels)]
        if missing:
            pg.wait_for_timeout(250)
            waited += 250
    assert not missing, [name[:60] for name in missing]
    written(pg, on_board, "leaderboards")
    nothing_ran(pg, "leaderboards")
    shot(pg, "13-hostile-leaderboards")

    pg.get_by_role("button", name="Sign out", exact=True).click()
    username_box(pg).wait_for()

    # The moderator: every page, the flagged activities with their names and titles.
    sign_in(pg, app_url, "moderator", "moderator-demo-pass")
    nothing_ran(pg, "moderator feed")
    for path in ("live", "stats", "upload", "settings", "leaderboards"):
        visit(pg, f"{app_url}/{path}", f"moderator {path}")
    visit(pg, f"{app_url}/athletes", "moderator athletes")
    pg.get_by_label("Find athletes by name or username").fill("hostile-")
    pg.get_by_label("Find athletes by name or username").press("Enter")
    pg.get_by_text(f"@{hw.usernames['long']}").wait_for()
    settle(pg)
    written(pg, [t for t in HOSTILE.values() if t.strip()], "moderator athletes")
    nothing_ran(pg, "moderator athletes")

    visit(pg, f"{app_url}/moderation", "moderation")
    for key, activity_id in hw.flagged.items():
        item = pg.locator(f".st-key-review_{activity_id}")
        item.wait_for()
        text = visible(item.inner_text())
        assert visible(HOSTILE_TITLES[key]) in text and visible(names[key]) in text, key
    for activity_id in hw.flagged.values():
        item = pg.locator(f".st-key-review_{activity_id}")
        item.frame_locator("iframe[title='streamlit_folium.st_folium']").first.locator(
            "path.route-line").first.wait_for(state="attached")
    settle(pg)
    nothing_ran(pg, "moderation")
    shot(pg, "14-hostile-moderation")
    # The runs scoring gave up on: each error, quoting hostile text, shown as written.
    for activity_id in hw.runs.values():
        pg.locator(f".st-key-unscored_{activity_id}").wait_for()
    written(pg, [f"ValueError: {t}"[:300] for t in HOSTILE.values() if t.strip()], "unscored")
    nothing_ran(pg, "unscored")
    for key, activity_id in hw.flagged.items():
        visit(pg, f"{app_url}/activity?id={activity_id}", f"moderator activity {key}")
        assert visible(HOSTILE_TITLES[key]) in visible(pg.inner_text("h1")), key
        written(pg, [HOSTILE[key]], f"moderator activity {key}")


def test_an_athlete_with_a_hostile_name_sees_their_name_note_and_device_as_written(page, app_url, hostile_world):
    """Signed in as the athlete whose name, flagged run's title, the moderator's note on it
    and device name are text Streamlit would rewrite (icons, its logo, arrows, links) between
    byte-order marks: the sidebar, the activity page and the device list show it as written,
    in bold where bold is meant; an athlete whose name looks blank is signed in as @username."""
    hw, pg = hostile_world, page
    text = HOSTILE["rewrite"]
    sign_in(pg, app_url, hw.usernames["rewrite"], "hostile-pass-1")
    signed_in = pg.locator("[data-testid='stSidebar'] [data-testid='stMarkdownContainer']").filter(
        has_text="Signed in as")
    assert visible(signed_in.inner_text()) == f"Signed in as {visible(text)}"
    assert visible(signed_in.locator("strong").inner_text()) == visible(text)
    # No link, image, icon or code made of the text (a heading's own anchor links to "#...").
    markup = "a:not([href^='#']), img, code, [data-testid='stIconMaterial']"
    assert signed_in.locator(markup).count() == 0

    visit(pg, f"{app_url}/activity?id={hw.flagged['rewrite']}", "own flagged activity")
    assert visible(pg.inner_text("h1")).endswith(visible(text))
    warning = pg.locator("[data-testid='stAlert'] [data-testid='stMarkdownContainer']").filter(
        has_text="Moderator's note")
    assert visible(warning.inner_text()).endswith(f"Moderator's note: {visible(text)}")
    assert pg.locator("h1").locator(markup).count() == 0 and warning.locator(markup).count() == 0
    shot(pg, "15-hostile-own-flag")

    visit(pg, f"{app_url}/settings", "own devices")
    device = pg.locator("main [data-testid='stMarkdownContainer']").filter(has_text=" · created ")
    device.first.wait_for()  # below the forms: on a busy machine it may arrive after the page has settled
    assert device.count() == 1
    assert visible(device.inner_text()).startswith(f"{visible(text)} · created ")
    assert visible(device.locator("strong").inner_text()) == visible(text)
    assert device.locator(markup).count() == 0

    # An address whose id is not ASCII digits is no activity, not a traceback.
    for raw in ("²", "٢", "9" * 20):
        pg.goto(f"{app_url}/activity?id={raw}")
        pg.get_by_text("No such activity").or_(pg.locator("[data-testid='stException']")).first.wait_for()
        assert pg.locator("[data-testid='stException']").count() == 0, raw
    nothing_ran(pg, "own pages")

    pg.get_by_role("button", name="Sign out", exact=True).click()
    username_box(pg).wait_for()
    sign_in(pg, app_url, hw.usernames["blank"], "hostile-pass-1")
    signed_in = pg.locator("[data-testid='stSidebar'] [data-testid='stMarkdownContainer']").filter(
        has_text="Signed in as")
    assert visible(signed_in.inner_text()) == f"Signed in as @{hw.usernames['blank']}"


def test_discover_shows_hostile_route_names_as_written_and_not_for_me_takes_one_away(page, app_url, world,
                                                                                    discover_world):
    """Routes named with hostile text (from their runs' titles) suggested to an athlete: each
    card shows the name as written beside the route's line on its map, nothing runs, and
    "Not for me" takes the card away for good. Her own route named with hostile text shows
    as written among the routes she may rate."""
    from sqlalchemy.orm import Session

    from core.recommend.service import suggestions_for
    from core.recommend.tables import RouteSignal
    from core.storage.engine import make_engine

    dw, pg = discover_world, page
    uid = dw.users["hugo"]
    hostile_ids = {dw.routes[k] for k in ("img", "script", "braces")}
    engine = make_engine(world.url)
    with Session(engine) as s:
        suggested = [(r.id, r.name) for r, _ in suggestions_for(s, uid, 10)]
    hostile = [(rid, name) for rid, name in suggested if rid in hostile_ids]
    assert len(hostile) >= 2, suggested

    sign_in(pg, app_url, dw.usernames["hugo"], DISCOVER_PASSWORD)
    pg.get_by_role("link", name="Discover").click()
    pg.get_by_role("heading", name="Discover", level=1).wait_for()
    settle(pg)
    for rid, name in hostile:
        card = pg.locator(f".st-key-suggestion_{rid}")
        card.wait_for()
        assert visible(name) in visible(card.inner_text()), name
        frame = card.frame_locator("iframe[title='streamlit_folium.st_folium']").first
        frame.locator("path.suggested-route-line").wait_for(state="attached")
        assert frame.locator("path.start-marker, path.finish-marker").count() == 0
    assert pg.locator("[class*='st-key-suggestion_']").filter(has=pg.get_by_role("button", name="Not for me")).count() \
        == len(suggested)
    written(pg, [name for _, name in hostile], "discover")
    # Her own route with a hostile name, among those she may rate: plain text in the select box.
    box = pg.locator("[data-testid='stSelectbox'] input")
    box.scroll_into_view_if_needed()
    settle(pg)
    box.focus()
    pg.keyboard.press("ArrowDown")  # opens the list
    option = pg.get_by_role("option").filter(has_text=dw.names["link"][:10])
    option.wait_for()
    assert visible(option.inner_text()).startswith(visible(dw.names["link"]) + " · ")
    assert option.locator("a").count() == 0
    pg.keyboard.press("Escape")
    nothing_ran(pg, "discover")
    shot(pg, "16-discover")

    rid, name = hostile[0]
    pg.locator(f".st-key-suggestion_{rid}").get_by_role("button", name="Not for me").click()
    pg.locator(f".st-key-suggestion_{rid}").wait_for(state="detached")
    pg.get_by_text("that route will not be suggested again").wait_for()
    settle(pg)
    assert visible(name) not in everything_text(pg)
    for other, other_name in hostile[1:]:
        assert visible(other_name) in visible(pg.locator(f".st-key-suggestion_{other}").inner_text())
    with Session(engine) as s:
        assert s.get(RouteSignal, (uid, rid, "dismiss")) is not None
    engine.dispose()
    pg.reload()  # and still gone on the next visit
    pg.get_by_role("heading", name="Discover", level=1).wait_for()
    settle(pg)
    pg.locator(f".st-key-suggestion_{hostile[1][0]}").wait_for()
    assert pg.locator(f".st-key-suggestion_{rid}").count() == 0
    nothing_ran(pg, "discover after not for me")


def test_badges_page_a_badge_in_the_feed_and_withdrawals_for_moderators(page, app_url, world, hostile_world,
                                                                         badge_world):
    """Alice sees her run's badges and completed challenge on its feed card, her Challenges
    page (this week's challenges; badges earned, withdrawn with the reason, next with
    progress; the streak chart) and a toast on the activity's page; the
    moderator sees the badges withdrawn lately under each athlete's name, hostile names as
    written, and nothing runs."""
    pg = page
    sign_in(pg, app_url, "alice", "alice-demo-pass")
    card = pg.locator(f".st-key-card_{badge_world.run_id}")
    card.get_by_text("First 5 km").wait_for()
    assert "New badges:" in card.inner_text() and "Challenge completed: 1 activity this week" in card.inner_text()
    visit(pg, f"{app_url}/challenges", "challenges")
    pg.get_by_role("heading", name="Badges earned").wait_for()
    written(pg, ["1 activity this week", "completed"], "challenges")
    # Mallory's group challenge: her hostile name as written, on the card and on its board.
    group = pg.locator(f".st-key-group_{badge_world.group_id}")
    group.get_by_text("Most distance this month").wait_for()
    assert XSS_NAME in visible(group.inner_text())
    nothing_ran(pg, "group challenge")
    written(pg, ["First steps", "First 5 km", f"activity {badge_world.run_id} was cropped", "Streak calendar"],
            "badges")
    assert pg.locator("[data-testid='stProgress']").count() >= 5
    chart(pg).first.wait_for()
    shot(pg, "30-badges")
    visit(pg, f"{app_url}/activity?id={badge_world.run_id}", "activity with badges")
    pg.get_by_text("New badge: First 5 km").wait_for()
    shot(pg, "31-badge-toast")
    nothing_ran(pg, "activity with badges")

    pg.context.clear_cookies()
    sign_in(pg, app_url, "moderator", "moderator-demo-pass")
    visit(pg, f"{app_url}/moderation", "moderation")
    pg.get_by_text("Badges withdrawn lately").click()
    settle(pg)
    names = hostile_names(hostile_world)
    written(pg, [names[k] for k in badge_world.withdrawn_ids], "withdrawn badges")
    written(pg, [f"a moderator confirmed activity {a} as irregular" for a in badge_world.withdrawn_ids.values()],
            "withdrawn badges")
    nothing_ran(pg, "withdrawn badges")
    shot(pg, "32-withdrawn-badges")


def sign_out(pg) -> None:
    pg.get_by_role("button", name="Sign out", exact=True).click()
    username_box(pg).wait_for()


def test_privacy_zones_hidden_ends_and_maps_are_set_in_settings(page, app_url, world):
    """An athlete adds a privacy zone in Settings, sees it listed, hides the ends and the map
    of every activity, and deletes the zone."""
    from playwright.sync_api import expect
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user, user_by_name
    from core.social.privacy_settings import zones_of
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    with Session(engine) as s, s.begin():
        create_user(s, "zoned", "Zoe Zoned", password="zoned-pass-1")
    pg = page
    sign_in(pg, app_url, "zoned", "zoned-pass-1")
    visit(pg, f"{app_url}/settings", "settings")
    form = pg.locator("[data-testid='stForm']").filter(has_text="Add a privacy zone")
    form.get_by_label("Latitude").fill("46.05120")
    form.get_by_label("Longitude").fill("14.50310")
    form.get_by_label("Longitude").press("Tab")
    form.get_by_role("button", name="Add zone").click()
    settle(pg)
    pg.get_by_text("Zone added.").wait_for()
    pg.get_by_text("Zone 1: 46.05120, 14.50310 · 400 m").wait_for()
    shot(pg, "17-privacy-zone")

    pg.get_by_text("Hide the map of every activity", exact=True).click()
    settle(pg)
    expect(pg.get_by_role("switch", name="Hide the map of every activity")).to_be_checked(timeout=TIMEOUT_MS)
    slider = pg.get_by_role("slider", name="Hide the start and end of every activity (m)")
    slider.focus()
    for _ in range(4):
        pg.keyboard.press("ArrowRight")
    settle(pg)
    pg.get_by_text("200", exact=True).first.wait_for()
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:  # each arrow press is a run of the page: the last one may still be saving
        with Session(engine) as s:
            me = user_by_name(s, "zoned")
            zones = [(round(z.lat, 5), round(z.lon, 5), z.radius_m) for z in zones_of(s, me.id)]
            saved = (me.settings.get("hide_map"), me.settings.get("hide_ends_m"))
        if saved == (True, 200) or time.monotonic() > deadline:
            break
        pg.wait_for_timeout(500)
    assert zones == [(46.0512, 14.5031, 400.0)] and saved == (True, 200)
    pg.get_by_role("button", name="Delete", exact=True).click()
    settle(pg)
    expect(pg.get_by_text("Zone 1:")).to_have_count(0, timeout=TIMEOUT_MS)
    nothing_ran(pg, "privacy settings")
    engine.dispose()


def test_a_strava_archive_is_imported_from_the_upload_page(page, app_url, world, tmp_path):
    """A zip made like Strava's export, uploaded on the Upload page: its run comes in with its
    name (hostile text, shown as written), its swim is skipped with the reason, and a member
    whose path leaves the archive is refused for that row alone."""
    import csv
    import gzip
    import io
    import zipfile

    from sqlalchemy.orm import Session

    from core.accounts.users import create_user
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    with Session(engine) as s, s.begin():
        create_user(s, "mover", "Mo Ver", password="mover-pass-1")
    engine.dispose()
    listing = io.StringIO()
    w = csv.writer(listing)
    w.writerow(["Activity ID", "Activity Date", "Activity Name", "Activity Type", "Distance", "Filename", "Distance"])
    w.writerow(["1", "Jul 1, 2014, 6:30:00 AM", XSS_TITLE, "Run", "10.0", "activities/1.fit.gz", "10000"])
    w.writerow(["2", "Jul 2, 2014, 6:30:00 AM", "Lake swim", "Swim", "1.0", "activities/2.fit", "1000"])
    w.writerow(["3", "Jul 3, 2014, 6:30:00 AM", "Escape", "Run", "5.0", "../evil.gpx", "5000"])
    zpath = tmp_path / "export_12345.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("activities.csv", listing.getvalue())
        zf.writestr("activities/1.fit.gz", gzip.compress((SHARED_TRACKS / "goldencheetah/10kUNLP2014-Garmin15.fit")
                                                         .read_bytes()))
        zf.writestr("activities/2.fit", b"not read")
    pg = page
    sign_in(pg, app_url, "mover", "mover-pass-1")
    visit(pg, f"{app_url}/upload", "upload")
    form = pg.locator("[data-testid='stForm']").filter(has_text="Strava archive (zip)")
    form.locator("input[type='file']").set_input_files(str(zpath))
    form.get_by_text("export_12345.zip").wait_for()
    pg.get_by_label("Who can see them").last.click()
    pg.get_by_role("option", name="private").click()
    form.get_by_role("button", name="Import the archive").click()
    settle(pg)
    pg.get_by_text("Imported 1 activity; skipped 1; 1 could not be read.").wait_for()
    written(pg, ["Row 3 (Escape): refused path '../evil.gpx': it leaves the archive"], "archive errors")
    pg.get_by_text("Skipped (1)").click()
    written(pg, ["Row 2 (Lake swim): Swim is not a sport this tracker records"], "archive skipped")
    nothing_ran(pg, "archive import")
    shot(pg, "18-strava-archive")
    visit(pg, f"{app_url}/stats", "mover's stats")
    written(pg, [XSS_TITLE], "imported title")
    nothing_ran(pg, "imported title")


def test_an_athlete_downloads_the_archive_of_their_data_from_settings(page, app_url, world):
    """An athlete asks for their archive in Settings, watches it wait for the worker, and once
    the worker's job has built it, downloads a zip holding their activity, titled as written."""
    import json
    import zipfile

    from sqlalchemy.orm import Session, sessionmaker

    from core.accounts.users import create_user
    from core.activities.imports import record_track
    from core.config import load_settings
    from core.jobs.export import build_exports
    from core.storage.engine import make_engine
    from core.synthetic.tracks import synthetic_track

    engine = make_engine(world.url)
    with Session(engine) as s, s.begin():
        me = create_user(s, "archivist", XSS_NAME, password="archive-pass-1")
        record_track(s, me, synthetic_track(random.Random(8), "run", time.time() - 7200, 46.05, 14.5, 30, 3.0), title=XSS_TITLE,
                     source="demo")
    pg = page
    sign_in(pg, app_url, "archivist", "archive-pass-1")
    visit(pg, f"{app_url}/settings", "settings")
    pg.get_by_role("button", name="Prepare my archive").click()
    settle(pg)
    pg.get_by_text("Waiting for the worker to start on it...").wait_for(timeout=TIMEOUT_MS)
    assert build_exports(sessionmaker(engine, expire_on_commit=False), load_settings())["exports"]["built"] == 1
    button = pg.get_by_role("button", name="Download your archive")
    button.wait_for(timeout=TIMEOUT_MS)  # the progress fragment sees it built
    with pg.expect_download(timeout=TIMEOUT_MS) as got:
        button.click()
    assert got.value.suggested_filename == "tracker-archivist.zip"
    with zipfile.ZipFile(got.value.path()) as zf:
        assert [a["title"] for a in json.loads(zf.read("activities.json"))] == [XSS_TITLE]
        assert json.loads(zf.read("profile.json"))["account"]["name"] == XSS_NAME
        assert sum(n.endswith(".gpx") for n in zf.namelist()) == 1
    shot(pg, "19-data-archive")
    nothing_ran(pg, "data archive")
    engine.dispose()


SOCIAL_PASSWORD = "social-pass-1"


@dataclass
class Social:
    """Athletes made for one test: usernames and ids by the test's short names for them,
    and their activities' ids by title."""

    usernames: dict[str, str] = field(default_factory=dict)
    ids: dict[str, int] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)


def _social(world, names: list[str], runs=(), follows=()) -> Social:
    """Athletes with usernames of their own (each name and one random number; password
    ``SOCIAL_PASSWORD``), a run for each of ``runs``, given as ``(name, title, visibility)``,
    and the follows ``(follower, followed)``."""
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user
    from core.activities.imports import record_track
    from core.social.follows import follow
    from core.storage.engine import make_engine
    from core.synthetic.tracks import synthetic_track

    tag = random.randrange(10**6)
    out, users = Social(), {}
    engine = make_engine(world.url)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        for name in names:
            users[name] = create_user(s, f"{name}{tag}", f"{name.title()} Social", password=SOCIAL_PASSWORD)
            out.usernames[name], out.ids[name] = users[name].username, users[name].id
        for k, (name, title, visibility) in enumerate(runs):
            track = synthetic_track(random.Random(tag + k), "run", time.time() - (k + 2) * 3600, 46.02 + k * 0.01,
                                    14.45, 15, 3.0)
            out.runs[title] = record_track(s, users[name], track, title=f"{title} {tag}", visibility=visibility,
                                           source="demo").id
        for follower, followed in follows:
            follow(s, users[follower], users[followed])
    engine.dispose()
    out.runs = {f"{title} {tag}": activity_id for title, activity_id in out.runs.items()}
    return out


def find_athlete(pg, app_url: str, username: str) -> None:
    """Look an athlete up by username on the Athletes page."""
    visit(pg, f"{app_url}/athletes", "athletes")
    box = pg.get_by_label("Find athletes by name or username")
    box.fill(username)
    box.press("Enter")
    pg.get_by_text(f"@{username}").or_(pg.get_by_text("Nobody by that name.")).first.wait_for()
    settle(pg)


def feed_text(pg, app_url: str, own_title: str) -> str:
    """The signed-in athlete's feed, read once their own newest card (``own_title``) is drawn."""
    visit(pg, app_url, "feed")
    pg.get_by_role("link", name=own_title).wait_for()
    settle(pg)
    return everything_text(pg)


def refused(pg, app_url: str, activity_id: int) -> None:
    """The activity's page tells the signed-in athlete it is not theirs to see."""
    visit(pg, f"{app_url}/activity?id={activity_id}", f"activity {activity_id} refused")
    pg.get_by_text("No such activity, or it is not shared with you").wait_for()
    assert pg.locator("h1").first.inner_text().strip() == "Activity"


def opened(pg, app_url: str, activity_id: int, title: str) -> None:
    """The activity's page shows it, titled ``title``, to the signed-in athlete."""
    visit(pg, f"{app_url}/activity?id={activity_id}", f"activity {activity_id}")
    pg.locator("h1").filter(has_text=title).wait_for()
    assert "not shared with you" not in pg.inner_text("main")


def press(pg, key: str) -> None:
    """Press the button Streamlit keyed ``key`` and wait for the page's run to end."""
    pg.locator(f".st-key-{key}").get_by_role("button").click()
    settle(pg)


def test_an_athlete_who_approves_followers_approves_one_request_and_declines_another(page, app_url, world):
    """An athlete turns on approval of new followers in Settings; two athletes ask to follow
    from the Athletes page and wait; the requests show in Settings, one is approved and the
    other declined: the approved follower sees the athlete's followers-only run, the
    declined one does not and may ask again."""
    from playwright.sync_api import expect

    w = _social(world, ["keeper", "fan", "stranger"], runs=[
        ("keeper", "Followers-only hill repeats", "followers"), ("fan", "Fan's easy run", "public"),
        ("stranger", "Stranger's easy run", "public")])
    hills, fan_run, stranger_run = w.runs
    pg = page

    sign_in(pg, app_url, w.usernames["keeper"], SOCIAL_PASSWORD)
    visit(pg, f"{app_url}/settings", "settings")
    switch = pg.get_by_role("switch", name="Approve new followers")
    expect(switch).not_to_be_checked()
    pg.get_by_text("Approve new followers", exact=True).click()
    settle(pg)
    expect(switch).to_be_checked(timeout=TIMEOUT_MS)
    visit(pg, f"{app_url}/settings", "settings again")  # kept
    expect(pg.get_by_role("switch", name="Approve new followers")).to_be_checked(timeout=TIMEOUT_MS)
    sign_out(pg)

    for asker, own in (("fan", fan_run), ("stranger", stranger_run)):
        sign_in(pg, app_url, w.usernames[asker], SOCIAL_PASSWORD)
        find_athlete(pg, app_url, w.usernames["keeper"])
        press(pg, f"follow_{w.ids['keeper']}")
        pg.get_by_text("they approve their followers").wait_for()
        pg.get_by_text("Requested: waiting for them to approve you.").wait_for()
        assert pg.locator(f".st-key-cancel_{w.ids['keeper']}").count() == 1
        assert hills not in feed_text(pg, app_url, own)  # waiting: only what everyone sees
        refused(pg, app_url, w.runs[hills])
        sign_out(pg)

    sign_in(pg, app_url, w.usernames["keeper"], SOCIAL_PASSWORD)
    visit(pg, f"{app_url}/settings", "settings with requests")
    pg.get_by_text("Requests to follow you").wait_for()
    for asker in ("fan", "stranger"):
        pg.get_by_text(f"@{w.usernames[asker]}").wait_for()
    shot(pg, "40-follow-requests")
    press(pg, f"approve_{w.ids['fan']}")
    pg.locator(f".st-key-approve_{w.ids['fan']}").wait_for(state="detached")
    press(pg, f"decline_{w.ids['stranger']}")
    pg.locator(f".st-key-decline_{w.ids['stranger']}").wait_for(state="detached")
    expect(pg.get_by_text("Requests to follow you")).to_have_count(0, timeout=TIMEOUT_MS)
    visit(pg, f"{app_url}/athletes", "keeper's athletes")
    pg.get_by_text("1 athlete follows you.").wait_for()
    followers = pg.locator(f".st-key-remove_follower_{w.ids['fan']}")
    followers.wait_for()
    text = pg.inner_text("main")
    assert f"@{w.usernames['fan']}" in text and f"@{w.usernames['stranger']}" not in text
    nothing_ran(pg, "answered requests")
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["fan"], SOCIAL_PASSWORD)
    assert hills in feed_text(pg, app_url, hills)
    opened(pg, app_url, w.runs[hills], hills)
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["stranger"], SOCIAL_PASSWORD)
    assert hills not in feed_text(pg, app_url, stranger_run)
    refused(pg, app_url, w.runs[hills])
    find_athlete(pg, app_url, w.usernames["keeper"])  # declined: no longer waiting, may ask again
    pg.locator(f".st-key-follow_{w.ids['keeper']}").wait_for()
    assert "Requested: waiting" not in pg.inner_text("main")
    nothing_ran(pg, "declined follower")


def test_a_removed_follower_no_longer_sees_followers_only_activities(page, app_url, world):
    """An athlete removes a follower on the Athletes page: that athlete's feed and the
    activity's page no longer show the athlete's followers-only run."""
    w = _social(world, ["host", "guest"], runs=[("host", "Followers-only long run", "followers"),
                                                ("guest", "Guest's recovery run", "public")],
                follows=[("guest", "host")])
    long_run, guest_run = w.runs
    pg = page
    sign_in(pg, app_url, w.usernames["guest"], SOCIAL_PASSWORD)
    assert long_run in feed_text(pg, app_url, long_run)  # following: it is there
    opened(pg, app_url, w.runs[long_run], long_run)
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["host"], SOCIAL_PASSWORD)
    visit(pg, f"{app_url}/athletes", "host's athletes")
    pg.get_by_text(f"@{w.usernames['guest']}").wait_for()
    press(pg, f"remove_follower_{w.ids['guest']}")
    pg.get_by_text("no longer follows you").wait_for()
    pg.get_by_text("Nobody follows you yet.").wait_for()
    assert pg.locator(f".st-key-remove_follower_{w.ids['guest']}").count() == 0
    shot(pg, "41-follower-removed")
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["guest"], SOCIAL_PASSWORD)
    assert long_run not in feed_text(pg, app_url, guest_run)
    refused(pg, app_url, w.runs[long_run])
    visit(pg, f"{app_url}/athletes", "guest's athletes")
    pg.get_by_text("You follow 0 athletes").wait_for()
    nothing_ran(pg, "removed follower")


def test_a_blocked_athlete_sees_nothing_of_the_blocker_and_may_follow_again_once_unblocked(page, app_url, world):
    """An athlete blocks a follower on the Athletes page: the blocked athlete sees neither
    of the blocker's runs (public or followers-only) in the feed or on their pages, and does
    not find the blocker to follow. Unblocked in Settings, they find them and follow again."""
    w = _social(world, ["wall", "pest"], runs=[("wall", "Public canal run", "public"),
                                               ("wall", "Followers-only tempo", "followers"),
                                               ("pest", "Pest's own run", "public")],
                follows=[("pest", "wall")])
    public_run, tempo, pest_run = w.runs
    pg = page
    sign_in(pg, app_url, w.usernames["pest"], SOCIAL_PASSWORD)
    seen = feed_text(pg, app_url, public_run)
    assert public_run in seen and tempo in seen  # following: both there
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["wall"], SOCIAL_PASSWORD)
    find_athlete(pg, app_url, w.usernames["pest"])
    press(pg, f"block_{w.ids['pest']}")
    pg.get_by_text("they see nothing of yours now").wait_for()
    pg.get_by_text("Blocked: they see nothing of yours.").wait_for()
    pg.locator(f".st-key-unblock_{w.ids['pest']}").wait_for()
    pg.get_by_text("Nobody follows you yet.").wait_for()
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["pest"], SOCIAL_PASSWORD)
    seen = feed_text(pg, app_url, pest_run)
    assert public_run not in seen and tempo not in seen and "Wall Social" not in seen
    for title in (public_run, tempo):
        refused(pg, app_url, w.runs[title])
    find_athlete(pg, app_url, w.usernames["wall"])
    pg.get_by_text("Nobody by that name.").wait_for()
    assert f"@{w.usernames['wall']}" not in pg.inner_text("main")
    assert pg.get_by_role("button", name="Follow", exact=True).count() == 0
    pg.get_by_text("You follow 0 athletes").wait_for()
    shot(pg, "42-blocked")
    nothing_ran(pg, "blocked")
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["wall"], SOCIAL_PASSWORD)
    visit(pg, f"{app_url}/settings", "blocker's settings")
    pg.get_by_text("Blocked athletes").wait_for()
    pg.get_by_text(f"@{w.usernames['pest']}").wait_for()
    press(pg, f"settings_unblock_{w.ids['pest']}")
    pg.locator(f".st-key-settings_unblock_{w.ids['pest']}").wait_for(state="detached")
    assert "Blocked athletes" not in pg.inner_text("main")
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["pest"], SOCIAL_PASSWORD)
    opened(pg, app_url, w.runs[public_run], public_run)  # public again for them
    refused(pg, app_url, w.runs[tempo])  # following did not come back by itself
    find_athlete(pg, app_url, w.usernames["wall"])
    press(pg, f"follow_{w.ids['wall']}")
    pg.get_by_text("Following").first.wait_for()
    pg.locator(f".st-key-unfollow_{w.ids['wall']}").wait_for()
    seen = feed_text(pg, app_url, public_run)
    assert public_run in seen and tempo in seen
    opened(pg, app_url, w.runs[tempo], tempo)
    nothing_ran(pg, "unblocked")


def test_deleting_an_account_in_settings_says_what_goes_signs_out_and_leaves_nothing_behind(page, app_url, world):
    """An athlete comments on a friend's run, then deletes their account in Settings: the
    page says what goes (comments on other athletes' activities included) and refuses a
    wrong username; once confirmed the athlete is signed out and cannot sign in again, and
    their friend sees neither their run nor their comment."""
    w = _social(world, ["leaver", "friend"], runs=[("leaver", "Farewell followers-only run", "followers"),
                                                   ("friend", "Friend's Sunday run", "public")],
                follows=[("friend", "leaver"), ("leaver", "friend")])
    farewell, sunday = w.runs
    comment = "See you on the trails, last time here"
    pg = page

    sign_in(pg, app_url, w.usernames["leaver"], SOCIAL_PASSWORD)
    feed_text(pg, app_url, sunday)
    card = pg.locator(f".st-key-card_{w.runs[sunday]}")
    card.get_by_text("0 comments", exact=True).click()
    card.get_by_label("Add a comment").fill(comment)
    card.get_by_role("button", name="Post").click()
    settle(pg)
    pg.locator(f".st-key-card_{w.runs[sunday]}").get_by_text(comment).wait_for()
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["friend"], SOCIAL_PASSWORD)
    assert farewell in feed_text(pg, app_url, farewell)
    pg.locator(f".st-key-card_{w.runs[sunday]}").get_by_text("1 comment", exact=True).wait_for()
    sign_out(pg)

    sign_in(pg, app_url, w.usernames["leaver"], SOCIAL_PASSWORD)
    visit(pg, f"{app_url}/settings", "settings")
    pg.get_by_role("heading", name="Delete my account").scroll_into_view_if_needed()
    what = pg.locator("[data-testid='stCaptionContainer']").filter(has_text="Deletes, for good, your account")
    what.wait_for()
    said = what.inner_text()
    for part in ("every activity", "follows and followers", "the comments and kudos you gave",
                 "comments you wrote on other athletes' activities included", "It cannot be undone"):
        assert part in said, part
    form = pg.locator("[data-testid='stForm']").filter(has_text="Type your username to confirm")
    form.get_by_label("Type your username to confirm").fill(w.usernames["friend"])
    form.get_by_label("Your password").fill(SOCIAL_PASSWORD)
    form.get_by_role("button", name="Delete my account for good").click()
    settle(pg)
    pg.get_by_text("That is not your username: nothing was deleted.").wait_for()
    shot(pg, "43-delete-account")
    form.get_by_label("Type your username to confirm").fill(w.usernames["leaver"])
    form.get_by_label("Your password").fill(SOCIAL_PASSWORD)
    form.get_by_role("button", name="Delete my account for good").click()
    pg.get_by_text("Your account and everything about you were deleted.").wait_for()
    username_box(pg).wait_for()
    settle(pg)
    assert "Signed in as" not in pg.inner_text("body")
    shot(pg, "44-account-deleted")

    # Signing in again is refused.
    pg.goto(app_url)
    username_box(pg).fill(w.usernames["leaver"])
    pg.locator(".st-key-signin_password input").fill(SOCIAL_PASSWORD)
    pg.get_by_role("button", name="Sign in").click()
    pg.get_by_text("Wrong username or password.").wait_for()
    assert pg.get_by_role("heading", name="Feed").count() == 0

    sign_in(pg, app_url, w.usernames["friend"], SOCIAL_PASSWORD)
    seen = feed_text(pg, app_url, sunday)
    assert farewell not in seen and comment not in seen
    pg.locator(f".st-key-card_{w.runs[sunday]}").get_by_text("0 comments", exact=True).wait_for()
    refused(pg, app_url, w.runs[farewell])
    visit(pg, f"{app_url}/athletes", "friend's athletes")
    pg.get_by_text("You follow 0 athletes").wait_for()
    pg.get_by_text("Nobody follows you yet.").wait_for()
    assert w.usernames["leaver"] not in pg.inner_text("main")
    nothing_ran(pg, "after the deletion")
