"""Shared fixtures: real databases (an SQLite file, and PostgreSQL when configured).

Every storage test runs once per database. PostgreSQL comes from TRACKER_TEST_POSTGRES_URL
(a server URL; each test run creates and drops its own database). Without it the PostgreSQL
cases skip with the reason, except under CI=true, where they fail: CI must exercise both.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from core.storage.engine import make_engine
from core.storage.schema import migrate

IN_CI = os.environ.get("CI", "").lower() == "true"
# What tests write without choosing a folder (the archive's files of imported uploads,
# exports) goes to a folder of the run's own, never to the checkout's data folder.
if "TRACKER_DATA_DIR" not in os.environ:
    os.environ["TRACKER_DATA_DIR"] = tempfile.mkdtemp(prefix="tracker-tests-")
# Where the app itself looks (TRACKER_SHARED_TRACKS, else ../shared/data/tracks).
SHARED_TRACKS = Path(os.environ.get("TRACKER_SHARED_TRACKS")
                     or Path(__file__).resolve().parents[2] / "shared" / "data" / "tracks")


def need(condition: bool, reason: str) -> None:
    """Skip when a real component is missing, but fail under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@contextmanager
def database_of_its_own(kind: str, folder: Path, prefix: str) -> Iterator[sessionmaker]:
    """A migrated database for one test or module alone (jobs that read every row must not
    see other tests' data), as a session factory: an SQLite file in ``folder``, or a new
    PostgreSQL database named after ``prefix``, dropped afterwards."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{folder / f'{prefix}.db'}")
        migrate(engine)
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()
        return
    server = os.environ.get("TRACKER_TEST_POSTGRES_URL")
    need(bool(server), "TRACKER_TEST_POSTGRES_URL is not set (PostgreSQL tests)")
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    name = f"tracker_{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(server).set(database=name).render_as_string(hide_password=False))
    migrate(engine)
    try:
        yield sessionmaker(engine, expire_on_commit=False)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def shared_tracks() -> Path:
    need(SHARED_TRACKS.is_dir(), f"the real tracks are not at {SHARED_TRACKS}")
    return SHARED_TRACKS


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "test.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_engine():
    server = os.environ.get("TRACKER_TEST_POSTGRES_URL")
    need(bool(server), "TRACKER_TEST_POSTGRES_URL is not set (PostgreSQL tests)")
    admin = make_engine(server, isolation_level="AUTOCOMMIT")
    name = f"tracker_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server is the reason
        need(False, f"PostgreSQL at {server} is unreachable: {exc}")
    engine = make_engine(make_url(server).set(database=name).render_as_string(hide_password=False))
    migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


@pytest.fixture
def session(engine):
    """A session inside a transaction that is rolled back after the test."""
    conn = engine.connect()
    outer = conn.begin()
    s = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    yield s
    s.close()
    outer.rollback()
    conn.close()


@pytest.fixture
def redis_client():
    """A real Redis (TRACKER_TEST_REDIS_URL), emptied before and after the test."""
    url = os.environ.get("TRACKER_TEST_REDIS_URL")
    need(bool(url), "TRACKER_TEST_REDIS_URL is not set (Redis tests)")
    from core.social.leaderboards import connect_redis

    client = connect_redis(url)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server is the reason
        need(False, f"Redis at {url} is unreachable: {exc}")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()
