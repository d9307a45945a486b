"""The worker's round: leaderboards rebuilt in Redis from the database; the CLI prints a board."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.jobs.worker import run_once
from core.social.leaderboards import board_key
from core.synthetic.tracks import synthetic_track

ROOT = Path(__file__).resolve().parents[3]


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


def test_worker_rounds_score_new_activities_and_hold_the_flagged(tmp_path, monkeypatch):
    """A completed drive saved as a run is scored at the next round (every 30 s), held out of
    the boards; the first round trains and saves a model when there is none."""
    from core.anomaly.registry import MODEL_FILE, model_dir
    from core.anomaly.tables import ActivityFlag
    from core.config import load_settings
    from core.jobs.worker import Jobs
    from core.social.leaderboards import totals
    from core.storage.engine import make_engine
    from core.storage.schema import migrate

    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    Sessions = sessionmaker(engine, expire_on_commit=False)
    jobs = Jobs(load_settings(), Sessions, None)
    assert "anomaly_model" in jobs.round(now=0.0)  # nothing saved yet: trained first
    assert (model_dir(load_settings()) / MODEL_FILE).exists()
    with Sessions() as s, s.begin():
        user = create_user(s, "speedy", "Speedy")
        honest = record_track(s, user, synthetic_track(random.Random(3), "run", time.time() - 7200, 46, 14, 40, 3.0),
                              visibility="public", source="demo")
        drive = record_track(s, user, synthetic_track(random.Random(4), "run", time.time() - 3600, 46, 14, 20, 14.0),
                             visibility="public", source="demo")
    done = jobs.round(now=30.0)
    assert done["scored"]["activities"] == 2 and "anomaly_model" not in done
    with Sessions() as s:
        assert s.get(ActivityFlag, drive.id).status == "flagged"
        assert s.get(ActivityFlag, honest.id).status == "clear"
        assert dict(totals(s, "all", "run"))[user.id] == honest.distance_m
    assert "scored" not in jobs.round(now=60.0)  # nothing new
    engine.dispose()


def test_the_scoring_round_sends_a_drawn_cleared_activity_to_the_moderators_unheld(tmp_path, monkeypatch):
    """Scored clear near the threshold and drawn (every one, here): sampled, in the moderators'
    queue, not held, on the boards; the next round leaves it as it is."""
    from core.anomaly import scoring
    from core.anomaly.moderation import queue
    from core.anomaly.tables import ActivityFlag
    from core.config import load_settings
    from core.jobs.scoring import score
    from core.social.leaderboards import totals
    from core.storage.engine import make_engine
    from core.storage.schema import migrate

    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(scoring, "SAMPLE_RATE", 1.0)
    monkeypatch.setattr(scoring, "SAMPLE_BAND", 1.0)  # the whole range below the threshold
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    migrate(engine)
    Sessions = sessionmaker(engine, expire_on_commit=False)
    with Sessions() as s, s.begin():
        user = create_user(s, "steady", "Steady")
        run = record_track(s, user, synthetic_track(random.Random(5), "run", time.time() - 7200, 46, 14, 40, 3.0),
                           visibility="public", source="demo")
    done = {}
    assert score(Sessions, load_settings(), None, done) == 1 and done["scored"]["activities"] == 1
    with Sessions() as s:
        assert s.get(ActivityFlag, run.id).status == "sampled" and not s.get(type(run), run.id).held
        assert [f.activity_id for f, _ in queue(s)] == [run.id]
        assert dict(totals(s, "all", "run"))[user.id] == run.distance_m
    assert score(Sessions, load_settings(), None, {}) == 0
    engine.dispose()
