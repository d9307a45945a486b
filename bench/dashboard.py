"""Page load in a real browser against 1M activities, next to a bare one-line Streamlit page.

Builds an SQLite database of 100k athletes (about 100 follows each) and 1M completed
activities over the last year, gives the bench athlete a 13,000-point ride, starts the
dashboard and a bare ``st.write`` page, and in Debian's Chromium (Playwright) times each page
from navigation until its content is visible: the feed's ten cards, the activity's route
line on the map and its charts, the leaderboard's chart and the athlete's rank. Every load
is a fresh Streamlit session; the first after start-up (empty caches) is reported apart.

    python bench/dashboard.py [--users 100000] [--activities 1000000] [--loads 7] [--redis-url URL]
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ROOT
from feed import build_users, insert_rows
from sqlalchemy import text
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.accounts.users import hash_password
from core.activities.imports import record_track
from core.storage.engine import make_engine
from core.storage.schema import migrate
from core.synthetic.tracks import TYPICAL_SPEED_MPS, synthetic_track

CHROMIUM = os.environ.get("TRACKER_BENCH_CHROMIUM", "/usr/bin/chromium")
BARE_PAGE = 'import streamlit as st\nst.write("Hello from a bare page")\n'
PASSWORD = "bench-password"
RIDE_TITLE = "Long ride of 13000 points"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build(url: str, users: int, activities: int) -> int:
    """The database; returns the id of the bench athlete's 13,000-point ride."""
    rng = random.Random(42)
    engine = make_engine(url)
    migrate(engine)
    started = time.time()
    build_users(engine, users, rng)
    now = datetime.now(UTC).replace(tzinfo=None)
    vis = ("public",) * 6 + ("followers",) * 3 + ("private",)

    def rows():
        for i in range(1, activities + 1):
            start = now - timedelta(seconds=rng.randrange(0, 365 * 86400))
            sport = "run" if rng.random() < 0.6 else "ride"
            distance = (5000 + rng.random() * 10000) * (1 if sport == "run" else 3)
            moving = distance / TYPICAL_SPEED_MPS[sport]
            yield (i, rng.randrange(1, users + 1), sport, "completed", sport.title(), rng.choice(vis), "demo",
                   now, start.strftime("%Y-%m-%d %H:%M:%S.%f"), distance, moving, moving, distance / moving, 0)
    insert_rows(engine, "activities", ["id", "user_id", "sport", "status", "title", "visibility", "source",
                                       "created_at", "start_time", "distance_m", "moving_time_s", "elapsed_time_s",
                                       "avg_speed_mps", "point_count"], rows())
    with Session(engine) as s, s.begin():
        athlete = s.get(User, 1)
        athlete.username, athlete.password_hash = "bench", hash_password(PASSWORD)
        ride = synthetic_track(rng, "ride", time.time() - 3 * 3600, 46.05, 14.5, 13_000 * 3 / 60, TYPICAL_SPEED_MPS["ride"])
        ride_id = record_track(s, athlete, ride, title=RIDE_TITLE, visibility="public",
                               source="demo").id
        run = synthetic_track(rng, "run", time.time() - 8 * 3600, 46.05, 14.5, 45, TYPICAL_SPEED_MPS["run"])
        record_track(s, athlete, run, title="Morning run", visibility="public", source="demo")
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    engine.dispose()
    print(f"database: {users:,} athletes, {activities:,} activities, built in {time.time() - started:.0f} s",
          flush=True)
    return ride_id


def start_streamlit(script: Path, env: dict) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
                             "--server.headless", "true", "--server.fileWatcherType", "none"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"streamlit did not start for {script}")


def timed(context, url: str, ready) -> float:
    """Seconds from navigation until ``ready(page)`` returns, in a fresh page (a new session)."""
    page = context.new_page()
    try:
        began = time.perf_counter()
        page.goto(url)
        ready(page)
        return time.perf_counter() - began
    finally:
        page.close()


def chart(page):
    """The page's plotly chart, drawn in its own frame (dashboard.ui.plotly_chart)."""
    return page.frame_locator("iframe[srcdoc*='tracker-chart']").first.locator(".js-plotly-plot .main-svg")


def map_frame(page):
    return page.frame_locator("iframe[title='streamlit_folium.st_folium']").first


def sign_in(context, app_url: str) -> None:
    """Sign in once: the cookie signs in every later load."""
    page = context.new_page()
    page.goto(app_url)
    page.get_by_label("Username").first.fill("bench")
    page.get_by_label("Password").first.fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Feed").wait_for()
    page.wait_for_timeout(1000)
    page.close()


def page_loads(context, pages: dict, loads: int) -> dict[str, dict]:
    """Each page's first load (the feed's was the sign-in) and ``loads`` more, interleaved
    so that machine noise hits every page alike."""
    first = {name: timed(context, u, ready) for name, (u, ready) in pages.items() if name != "feed"}
    runs: dict[str, list[float]] = {name: [] for name in pages}
    for _ in range(loads):
        for name, (u, ready) in pages.items():
            runs[name].append(timed(context, u, ready))
    return {name: {"first": first.get(name), "median": statistics.median(runs[name]), "runs": runs[name]}
            for name in pages}


def in_app_moves(context, pages: dict, app_url: str, loads: int) -> dict[str, list[float]]:
    """Inside the app, as an athlete moves: from the feed to the ride by its link, and on to
    the leaderboard from the menu (the page's scripts are already loaded then)."""
    moves = {"feed -> activity": [], "activity -> leaderboard": []}
    for _ in range(loads):
        page = context.new_page()
        page.goto(app_url)
        pages["feed"][1](page)
        began = time.perf_counter()
        page.get_by_role("link", name=RIDE_TITLE).first.click()
        pages["activity (13,000 points)"][1](page)
        moves["feed -> activity"].append(time.perf_counter() - began)
        began = time.perf_counter()
        page.get_by_role("link", name="Leaderboards").first.click()
        pages["leaderboard"][1](page)
        moves["activity -> leaderboard"].append(time.perf_counter() - began)
        page.close()
    return moves


def report(args, results: dict[str, dict], in_app: dict[str, list[float]]) -> None:
    bare_median = results["bare page"]["median"]
    print(f"{args.activities:,} activities, SQLite, leaderboards from {'Redis' if args.redis_url else 'the database'};"
          f" {args.loads} loads per page, each a new session")
    for name, r in results.items():
        first = f"first load {r['first']:.2f} s, " if r["first"] is not None else ""
        print(f"{name:<26} {first}median {r['median']:.2f} s = {r['median'] / bare_median:.2f}x the bare page "
              f"(runs: {', '.join(f'{x:.2f}' for x in r['runs'])})")
    print("in-app navigation (the app already loaded in the tab):")
    for name, values in in_app.items():
        print(f"{name:<26} median {statistics.median(values):.2f} s "
              f"(runs: {', '.join(f'{x:.2f}' for x in values)})")


def bench_env(args, workdir: Path, url: str) -> dict:
    """The platform's environment for the bench (tiles unreachable, Redis only if asked);
    with Redis, the worker builds the boards first."""
    env = dict(os.environ, TRACKER_DATABASE_URL=url, TRACKER_DATA_DIR=str(workdir),
               TRACKER_TILE_URL="http://127.0.0.1:9/{z}/{x}/{y}.png", PYTHONPATH=str(ROOT))
    env.pop("TRACKER_REDIS_URL", None)
    if args.redis_url:
        env["TRACKER_REDIS_URL"] = args.redis_url
        subprocess.run([sys.executable, "-m", "core", "worker", "--once"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--activities", type=int, default=1_000_000)
    parser.add_argument("--loads", type=int, default=7, help="timed loads of each page after the first")
    parser.add_argument("--redis-url", help="read leaderboards from Redis (rebuilt first) instead of the database")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    workdir = Path(tempfile.mkdtemp(prefix="dashbench-"))
    url = f"sqlite:///{workdir / 'tracker.db'}"
    ride_id = build(url, args.users, args.activities)
    env = bench_env(args, workdir, url)
    bare_script = workdir / "bare.py"
    bare_script.write_text(BARE_PAGE)
    app, app_url = start_streamlit(ROOT / "dashboard" / "app.py", env)
    bare, bare_url = start_streamlit(bare_script, env)
    pages = {
        "bare page": (bare_url, lambda p: p.get_by_text("Hello from a bare page").wait_for()),
        "feed": (app_url, lambda p: (p.locator("[class*='st-key-card_']").nth(9).wait_for(),
                                     p.get_by_role("button", name="Load more").wait_for())),
        "activity (13,000 points)": (f"{app_url}/activity?id={ride_id}", lambda p: (
            map_frame(p).locator("path.route-line").first.wait_for(state="attached"),
            chart(p).first.wait_for())),
        "leaderboard": (f"{app_url}/leaderboards", lambda p: (
            p.get_by_text("Your rank").wait_for(), chart(p).first.wait_for())),
    }
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(120_000)
            sign_in(context, app_url)
            results = page_loads(context, pages, args.loads)
            in_app = in_app_moves(context, pages, app_url, args.loads)
            browser.close()
    finally:
        app.terminate()
        bare.terminate()
    report(args, results, in_app)


if __name__ == "__main__":
    main()
