"""The worker's round: leaderboards rebuilt in Redis from the database; the CLI prints a board."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.accounts import create_user
from core.activities import record_track
from core.demo import synthetic_track
from core.leaderboard import board_key
from core.worker import run_once

ROOT = Path(__file__).resolve().parents[2]


def test_worker_round_rebuilds_the_boards(sqlite_engine, redis_client):
    Sessions = sessionmaker(sqlite_engine, expire_on_commit=False)
    with Session(sqlite_engine, expire_on_commit=False) as s, s.begin():
        user = create_user(s, f"worker_{time.time_ns() % 10**8}", "Worker Test")
        record_track(s, user, synthetic_track(random.Random(8), "ride", time.time() - 3600, 46, 14, 30, 7.0),
                     visibility="public", source="demo")
    done = run_once(Sessions, redis_client)
    assert done["leaderboards"]["boards"] == 6
    assert redis_client.zscore(board_key("week", "ride"), f"{user.id:012d}") > 10_000
    assert run_once(Sessions, None) == {}  # nothing to rebuild without Redis


def test_leaderboard_command_prints_a_board(sqlite_engine):
    url = sqlite_engine.url.render_as_string(hide_password=False)
    env = dict(os.environ, TRACKER_DATABASE_URL=url)
    env.pop("TRACKER_REDIS_URL", None)
    out = subprocess.run([sys.executable, "-m", "core", "leaderboard", "--period", "all", "--sport", "ride"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("all ride global (") and "from database" in out.stdout
