"""The fix-stream tables migrate up and down; a device token's sport is run, ride or none."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.accounts.tables import DeviceToken
from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.storage.engine import make_engine
from core.storage.schema import downgrade, migrate, table_names

ROOT = Path(__file__).resolve().parents[3]


def test_the_head_has_the_fix_stream_tables(engine):
    assert {"device_tracks", "fix_hints"} <= table_names(engine)
    columns = {c["name"] for c in inspect(engine).get_columns("device_tokens")}
    assert "sport" in columns
    indexes = {i["name"] for i in inspect(engine).get_indexes("device_tracks")}
    assert {"ix_device_tracks_token_last", "ix_device_tracks_recompute"} <= indexes


def test_down_to_0008_and_up_again_keeps_the_tokens(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    migrate(engine, "0008")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO users (username, name, role, default_visibility, settings, created_at)"
                          " VALUES ('kept', 'Kept', 'athlete', 'followers', '{}', '2026-01-01')"))
        conn.execute(text("INSERT INTO device_tokens (user_id, token_hash, name, created_at, revoked)"
                          " VALUES (1, 'h', 'phone', '2026-01-01', 0)"))
    migrate(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name, sport FROM device_tokens")).all() == [("phone", None)]
    downgrade(engine, "0008")
    assert not {"device_tracks", "fix_hints"} & table_names(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM device_tokens")).scalar() == "phone"
    migrate(engine)
    engine.dispose()


def test_a_token_sport_is_run_ride_or_none(session):
    user = create_user(session, f"tok_{time.time_ns() % 10**9}")
    assert create_device_token(session, user, sport="ride")[0].sport == "ride"
    assert create_device_token(session, user)[0].sport is None
    with pytest.raises(ValueError):
        create_device_token(session, user, sport="swim")
    with pytest.raises(IntegrityError), session.begin_nested():
        session.add(DeviceToken(user_id=user.id, token_hash="x" * 64, name="p", sport="swim"))
        session.flush()


def test_the_device_token_command_takes_a_sport(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    env = dict(os.environ, TRACKER_DATABASE_URL=url)
    run = [sys.executable, "-m", "core"]
    assert subprocess.run([*run, "create-user", "phoneuser"], cwd=ROOT, env=env, capture_output=True,
                          timeout=120).returncode == 0
    out = subprocess.run([*run, "device-token", "--user", "phoneuser", "--sport", "ride"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    with Session(make_engine(url)) as s:
        assert s.query(DeviceToken.sport).scalar() == "ride"
    bad = subprocess.run([*run, "device-token", "--user", "phoneuser", "--sport", "swim"], cwd=ROOT, env=env,
                         capture_output=True, timeout=120)
    assert bad.returncode != 0
