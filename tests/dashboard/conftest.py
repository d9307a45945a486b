"""A small demo world in a real SQLite file for the dashboard's tests, with hostile text in it,
the browser (Debian's Chromium through Playwright) the page and escaping tests drive, and a way
to serve a Streamlit script on a loopback port for it."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user, user_by_name
from core.activities.imports import record_track
from core.activities.ingest import ingest_points
from core.activities.lifecycle import change_status, create_activity
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag, ModerationDecision, ScoringFailure
from core.recommend.service import train
from core.routes.matching import match_pending
from core.routes.tables import Route, RouteActivity
from core.social.comments import add_comment
from core.social.follows import follow
from core.social.tables import Comment
from core.storage.base import utcnow
from core.storage.engine import make_engine, make_sessionmaker
from core.storage.schema import migrate
from core.synthetic.demo import build_demo
from core.synthetic.tracks import synthetic_track
from tests.conftest import need
from tests.core.routes.ways import polygon, track, walk

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
CHROMIUM = os.environ.get("TRACKER_TEST_CHROMIUM", "/usr/bin/chromium")
XSS_TITLE = "<img src=x onerror=alert(1)>"
XSS_NAME = "Mallory <script>alert(2)</script>"
XSS_COMMENT = "**bold?** <b onmouseover=alert(3)>hi</b> [link](javascript:alert(4))"
PRIVATE_TITLE = "Private recovery jog"
LIVE_TITLE = "Lunch loop (live)"
PRIVATE_LIVE_TITLE = "Secret intervals (live)"

# Text people could type as a name, a title or a comment, each aimed at one place text lands.
# Every alert says which one ran.
HOSTILE = {
    "backquote": "`+alert('backquote')+`",  # ends folium's template literal
    "template": "${alert('template')}",  # runs inside any template literal
    "script": "</script><script>alert('script')</script>",  # ends a script element
    "link": "[tap](javascript:alert('link')) javascript:alert('href')",  # a Markdown link, a bare scheme
    "braces": "{{7*7}} ${7*7} {% raw %}",  # template engines (Jinja and the like) evaluating text
    "img": "<img src=x onerror=alert('img')>",  # HTML with an event handler
    "attribute": "\"'><svg onload=alert('attribute')>",  # leaves a quoted attribute
    "rtl": "Ann \u202egnp.exe",  # a right-to-left override: shows as "Ann exe.png"
    "backslash": "C:\\users\\x0 \\u{zz} \\",  # invalid escapes in a template literal
    "suffix": "runner_0 {{'map_div'}} alert(coords);",  # what streamlit-folium rewrites in a map script
    "long": ("W" * 9 + " ") * 999 + "W" * 10,  # 10,000 characters
    "empty": "",
    # What Streamlit's Markdown rewrites after resolving escapes (an icon, its logo, an emoji,
    # arrows, a dash, ≥, live links), between byte-order marks that would keep ** from bolding.
    "rewrite": "\ufeffTempo -> 5 km >= goal · :material/lock: only you :streamlit: :smile: <-> a -- b ~= c "
               "www.example.org mail@example.org http://evil.example/login\ufeff",
    "blank": "\u200b\ufeff\u202e\u3164\u2800",  # looks blank: shown as @username
}
WATCHER_PASSWORD = "watcher-pass-1"
DISCOVER_PASSWORD = "discover-pass-1"


@dataclass
class World:
    url: str
    data_dir: Path
    private_id: int  # alice's private activity
    xss_id: int  # mallory's public activity with a hostile title
    alice_id: int
    bob_id: int


@dataclass
class HostileWorld:
    """One athlete per hostile string, whose name, titles, comment, device name and the
    moderator's note on their flagged run are that string, and the athlete who follows them
    all (``watcher``)."""

    watcher: str
    watcher_run_id: int  # the watcher's own run: every hostile athlete commented on it
    usernames: dict[str, str] = field(default_factory=dict)  # by HOSTILE key
    runs: dict[str, int] = field(default_factory=dict)  # a completed public run each
    flagged: dict[str, int] = field(default_factory=dict)  # a run each the moderator asked them to crop
    live: dict[str, int] = field(default_factory=dict)  # an activity being recorded now each


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> World:
    data_dir = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{data_dir / 'tracker.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        build_demo(s, users=30, activities=120, seed=11, shared_tracks=None, progress=False)
        alice, bob = user_by_name(s, "alice"), user_by_name(s, "bob")
        mallory = create_user(s, "mallory", XSS_NAME, password="mallory-pass")
        follow(s, alice, mallory)
        follow(s, bob, mallory)
        xss = record_track(s, mallory, synthetic_track(random.Random(5), "run", time.time() - 3900, 38.72, -9.14,
                                                       60, 3.0), title=XSS_TITLE, visibility="public", source="demo")
        add_comment(s, mallory, xss.id, XSS_COMMENT)
        # A public run this week, so alice has a rank on the weekly running board.
        record_track(s, alice, synthetic_track(random.Random(6), "run", time.time() - 5400, 38.71, -9.13, 40, 2.8),
                     title="Riverside tempo", visibility="public", source="demo")
        # Recording right now (the last point is from this moment): mallory in public, alice in private.
        for owner, title, visibility in ((mallory, LIVE_TITLE, "public"), (alice, PRIVATE_LIVE_TITLE, "private")):
            record_live(s, owner, title, visibility, 38.70, -9.14, points=100)
        private = s.scalars(select(Activity).where(Activity.user_id == alice.id,
                                                   Activity.title == PRIVATE_TITLE)).one()
        out = World(url, data_dir, private.id, xss.id, alice.id, bob.id)
    engine.dispose()
    os.environ["TRACKER_DATABASE_URL"] = url
    os.environ["TRACKER_DATA_DIR"] = str(data_dir)
    os.environ.pop("TRACKER_REDIS_URL", None)
    yield out


def record_live(s: Session, owner, title: str, visibility: str, lat: float, lon: float, points: int) -> Activity:
    """An activity being recorded: started ``5 * points`` seconds ago, a point every 5 s
    running north at 3 m/s, the last one now."""
    live = create_activity(s, owner, "run", title=title, visibility=visibility)
    t0 = time.time() - 5 * (points - 1)
    change_status(s, live, "start", at=t0)
    ingest_points(s, live, [{"seq": i, "t": t0 + 5 * i, "lat": lat + i * 5 * 3.0 / 111_180, "lon": lon}
                            for i in range(points)])
    return live


@pytest.fixture(scope="session")
def hostile_world(world) -> HostileWorld:
    """Hostile athletes added to the demo world, seen by ``watcher`` (who follows them all)
    and by the moderator (their flagged runs wait in the queue).

    Sign-up and the forms trim, cut or refuse some of these strings; the rows hold them as
    written all the same (as an older version or another client could have stored them),
    so the pages are shown to cope with anything stored.
    """
    engine = make_engine(world.url)
    now = time.time()
    with Session(engine, expire_on_commit=False) as s, s.begin():
        watcher = create_user(s, "watcher", "Wendy Watcher", password=WATCHER_PASSWORD)
        moderator = user_by_name(s, "moderator")
        own = record_track(s, watcher, synthetic_track(random.Random(90), "run", now - 9000, 38.70, -9.10, 20, 3.0),
                           title=HOSTILE["script"], visibility="public", source="demo")
        create_device_token(s, watcher, HOSTILE["img"])
        out = HostileWorld(watcher.username, own.id)
        for k, (key, text) in enumerate(HOSTILE.items()):
            user = create_user(s, f"hostile-{key}", text or None, password="hostile-pass-1")
            user.name = text
            follow(s, watcher, user)
            lat, lon = 38.74 + (k // 4) * 0.01, -9.20 + (k % 4) * 0.012
            run = record_track(s, user, synthetic_track(random.Random(100 + k), "run", now - 3600 - 60 * k, lat, lon,
                                                        12, 3.0), visibility="public", source="demo")
            flagged = record_track(s, user, synthetic_track(random.Random(200 + k), "run", now - 7200 - 60 * k, lat,
                                                            lon, 12, 3.2), visibility="public", source="demo")
            s.add(ActivityFlag(activity_id=flagged.id, user_id=user.id, sport="run", score=0.9 - k / 100,
                               status="crop_requested", reasons=["400 m in 0:52, faster than this athlete has run it"],
                               codes="", verdict={"hits": []}, features={}))
            s.add(ModerationDecision(activity_id=flagged.id, user_id=user.id, moderator_id=moderator.id, action="request_crop",
                                     note=text, score=0.9))
            flagged.held = True
            device, _ = create_device_token(s, user)
            device.name = text
            live = record_live(s, user, "untitled", "public", lat, lon, points=20)
            for activity in (run, flagged, live):
                activity.title = text
            s.add(Comment(activity_id=own.id, owner_id=own.user_id, user_id=user.id, text=text))
            # Scoring gave up on the run: its error, as an exception could word it, quotes the text.
            s.add(ScoringFailure(activity_id=run.id, user_id=user.id, attempts=5, error=f"ValueError: {text}"[:300],
                                 first_failed_at=utcnow(), failed_at=utcnow(), retry_at=None))
            out.usernames[key], out.runs[key], out.flagged[key], out.live[key] = (user.username, run.id, flagged.id,
                                                                                  live.id)
    engine.dispose()
    yield out


@dataclass
class BadgeWorld:
    run_id: int  # alice's newest public run: it earned "First steps" and "First 5 km"
    active_challenge_id: int = 0  # alice's distance challenge this week, under way
    group_id: int = 0  # mallory's "most distance this month", alice invited
    withdrawn_ids: dict[str, int] = field(default_factory=dict)  # by HOSTILE key: the flagged run


@pytest.fixture(scope="session")
def badge_world(world, hostile_world) -> BadgeWorld:
    """Awards as the badge job leaves them (the job itself is tested in tests/core/challenges):
    alice's two badges from her newest public run and one withdrawn, and for each hostile
    athlete a badge withdrawn because of their flagged run (the moderators' page lists it
    under their name)."""
    from core.challenges.tables import BadgeAward

    engine = make_engine(world.url)
    now = datetime.now(UTC)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        alice = user_by_name(s, "alice")
        run = s.scalars(select(Activity).where(Activity.user_id == alice.id, Activity.sport == "run",
                                               Activity.visibility == "public", Activity.status == "completed")
                        .order_by(Activity.start_time.desc())).first()
        for code in ("first_activity", "run_5k"):
            s.add(BadgeAward(user_id=alice.id, code=code, activity_id=run.id, earned_at=run.start_time, awarded_at=now))
        s.add(BadgeAward(user_id=alice.id, code="run_half", activity_id=None, earned_at=run.start_time,
                         awarded_at=now, withdrawn_at=now, withdrawn_activity_id=run.id,
                         withdrawn_reason=f"activity {run.id} was cropped"))
        # This week: one challenge under way, and one the run completed.
        from core.challenges.personal import current_week, week_bounds
        from core.challenges.tables import Challenge

        week = current_week(now, UTC)
        start, end = week_bounds(week, UTC)
        active = Challenge(user_id=alice.id, week=week, kind="distance", sport="run", target=20000.0, usual=18000.0,
                           level=1, starts_at=start, deadline=end, progress=5000.0, status="active")
        done = Challenge(user_id=alice.id, week=week, kind="sessions", sport=None, target=1.0, usual=1.0, level=0,
                         starts_at=start, deadline=end, progress=1.0, status="completed",
                         completed_at=run.start_time, completed_by=run.id)
        s.add_all([active, done])
        s.flush()
        out = BadgeWorld(run.id, active_challenge_id=active.id)
        # Mallory (a hostile name) and alice follow each other; mallory invites her to a group.
        from core.challenges.groups import create_group

        mallory = user_by_name(s, "mallory")
        follow(s, mallory, alice)
        out.group_id = create_group(s, mallory, "most_distance", [alice.id]).id
        for key, username in hostile_world.usernames.items():
            user = user_by_name(s, username)
            flagged = hostile_world.flagged[key]
            s.add(BadgeAward(user_id=user.id, code="run_10k", activity_id=flagged, earned_at=now, awarded_at=now,
                             withdrawn_at=now, withdrawn_activity_id=flagged,
                             withdrawn_reason=f"a moderator confirmed activity {flagged} as irregular"))
            out.withdrawn_ids[key] = flagged
    engine.dispose()
    import streamlit as st

    st.cache_data.clear()  # pages run in this process (AppTest) read these afresh
    yield out


def _loop(east: float, north: float, w: float = 1600, h: float = 900):
    return polygon((east, north), (east + w, north), (east + w, north + h), (east, north + h))


# The town of the route suggestions: loops in metres east and north of DISCOVER_AT, far from
# every demo town. Four are run under hostile titles, so their routes are named with them.
DISCOVER_AT = (52.37, 4.89)
DISCOVER_LOOPS = {
    "North": (_loop(0, 1200), "North Loop"), "East": (_loop(2200, 0), "East Loop"),
    "South": (_loop(0, -1500), "South Loop"), "West": (_loop(-2500, 0), "West Loop"),
    "Centre": (_loop(0, 0, 1200, 700), "Centre Loop"),
    "img": (_loop(2200, 1500), HOSTILE["img"]), "script": (_loop(-2500, 1500), HOSTILE["script"]),
    "braces": (_loop(2200, -1500), HOSTILE["braces"]), "link": (_loop(-2500, -1500), HOSTILE["link"]),
}
# Who ran which loops (in this order, the first longest ago).
DISCOVER_PLAN = {
    "dora": ["North", "North", "Centre"],  # saves, sets aside and follows (the page tests)
    "eli": ["North", "East"],  # rates
    "hugo": ["Centre", "South", "link"],  # the browser test's athlete
    "ivy": ["North", "East", "South", "img", "script"],
    "jon": ["Centre", "East", "img", "West", "link"],
    "kim": ["North", "Centre", "script", "img", "South", "braces"],
    "lea": ["East", "West", "img", "link", "braces"],
}


@dataclass
class DiscoverWorld:
    """Athletes of the suggestions town (username ``discover-<name>``, password
    ``DISCOVER_PASSWORD``), their runs and the routes those became."""

    users: dict[str, int] = field(default_factory=dict)  # user id by name in DISCOVER_PLAN
    usernames: dict[str, str] = field(default_factory=dict)
    runs: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (name, loop): activity ids
    routes: dict[str, int] = field(default_factory=dict)  # route id by loop
    names: dict[str, str] = field(default_factory=dict)  # route name by loop


@pytest.fixture(scope="session")
def discover_world(world) -> DiscoverWorld:
    """Runs of the suggestions town's loops in public (10 to 40 days ago: off this week's
    leaderboards), every pending activity of the world matched into routes, and the
    recommender trained, as the worker would."""
    engine = make_engine(world.url)
    Sessions = make_sessionmaker(engine)
    now, seed = time.time(), 0
    out = DiscoverWorld()
    with Sessions() as s, s.begin():
        for name, loops in DISCOVER_PLAN.items():
            user = create_user(s, f"discover-{name}", f"{name.title()} Discover", password=DISCOVER_PASSWORD)
            out.users[name], out.usernames[name] = user.id, user.username
            for k, loop in enumerate(loops):
                seed += 1
                shape, title = DISCOVER_LOOPS[loop]
                days_ago = 38 - 4 * k - seed % 3
                run = record_track(s, user, track(walk(shape, 3.0, 5.0, start_frac=(seed % 5) / 5), *DISCOVER_AT, 5.0,
                                                  seed=seed, t0=now - days_ago * 86400),
                                   title=title, visibility="public", source="demo")
                out.runs.setdefault((name, loop), []).append(run.id)
    while match_pending(Sessions):
        pass
    train(Sessions)
    with Sessions() as s:
        for loop in DISCOVER_LOOPS:
            first = out.runs[next((n, loop) for n, loops in DISCOVER_PLAN.items() if loop in loops)][0]
            route = s.get(Route, s.get(RouteActivity, first).route_id)
            out.routes[loop], out.names[loop] = route.id, route.name
    engine.dispose()
    return out


@contextmanager
def streamlit_server(script: Path, *args: str, env: dict | None = None) -> Iterator[str]:
    """``streamlit run script -- args`` on a free loopback port, headless: its URL once it
    answers, the process ended afterwards."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true",
                             "--server.fileWatcherType", "none", "--", *args],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"streamlit exited: {proc.stdout.read().decode()[-2000:]}")
                if time.monotonic() > deadline:
                    pytest.fail("streamlit did not answer within 90 s")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, driven by Playwright: one per test module (Playwright's synchronous
    API keeps an event loop of its own, stopped before the next module runs)."""
    need(Path(CHROMIUM).exists(), f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need(False, "playwright is not installed")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()
