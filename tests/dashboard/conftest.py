"""A small demo world in a real SQLite file for the dashboard's tests, with hostile text in it."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts import create_user, user_by_name
from core.activities import change_status, create_activity, ingest_points, record_track
from core.db import make_engine
from core.demo import build_demo, synthetic_track
from core.feed import follow
from core.models import Activity
from core.schema import migrate
from core.social import add_comment

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
XSS_TITLE = "<img src=x onerror=alert(1)>"
XSS_NAME = "Mallory <script>alert(2)</script>"
XSS_COMMENT = "**bold?** <b onmouseover=alert(3)>hi</b> [link](javascript:alert(4))"
PRIVATE_TITLE = "Private recovery jog"
LIVE_TITLE = "Lunch loop (live)"
PRIVATE_LIVE_TITLE = "Secret intervals (live)"


@dataclass
class World:
    url: str
    data_dir: Path
    private_id: int  # alice's private activity
    xss_id: int  # mallory's public activity with a hostile title
    alice_id: int
    bob_id: int


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
        # Recording right now: mallory in public, alice in private.
        for owner, title, visibility in ((mallory, LIVE_TITLE, "public"), (alice, PRIVATE_LIVE_TITLE, "private")):
            live = create_activity(s, owner, "run", title=title, visibility=visibility)
            t0 = time.time() - 600
            change_status(s, live, "start", at=t0)
            ingest_points(s, live, [{"seq": i, "t": t0 + 5 * i, "lat": 38.70 + i * 5 * 3.0 / 111_180, "lon": -9.14}
                                    for i in range(100)])
        private = s.scalars(select(Activity).where(Activity.user_id == alice.id,
                                                   Activity.title == PRIVATE_TITLE)).one()
        out = World(url, data_dir, private.id, xss.id, alice.id, bob.id)
    engine.dispose()
    os.environ["TRACKER_DATABASE_URL"] = url
    os.environ["TRACKER_DATA_DIR"] = str(data_dir)
    os.environ.pop("TRACKER_REDIS_URL", None)
    yield out
