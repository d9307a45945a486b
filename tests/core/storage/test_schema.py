"""Migrations run up and down on SQLite and PostgreSQL; SQLite is set up to be crash-safe."""

import sqlite3

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.accounts.users import create_user
from core.storage.engine import SQLITE_PAGE_BYTES, make_engine
from core.storage.schema import downgrade, migrate, table_names

TABLES = {"users", "friends", "activities", "route_points", "activity_events", "comments", "kudos",
          "device_tokens"}


def test_migrations_create_every_table(engine):
    """The head revision has the seed's tables and the feature tables."""
    assert TABLES <= table_names(engine)


def test_migrations_go_down_and_up_again(tmp_path):
    """Downgrade to base drops the tables; upgrade restores them."""
    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    downgrade(engine, "base")
    assert not (TABLES & table_names(engine))
    migrate(engine)
    assert TABLES <= table_names(engine)


def test_sqlite_runs_in_wal_with_full_sync(sqlite_engine):
    """WAL journal and synchronous=FULL make a committed transaction durable."""
    with sqlite_engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_a_new_sqlite_database_has_small_pages_and_an_old_one_keeps_its_own(tmp_path, sqlite_engine):
    """New files get SQLITE_PAGE_BYTES; a database made with SQLite's default 4 KiB pages
    opens, migrates and takes writes with its page size unchanged."""
    with sqlite_engine.connect() as conn:
        assert conn.execute(text("PRAGMA page_size")).scalar() == SQLITE_PAGE_BYTES
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("PRAGMA page_size=4096")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE keep (x INTEGER)")
    engine = make_engine(f"sqlite:///{old}")
    migrate(engine)
    with Session(engine) as s, s.begin():
        create_user(s, "old_file_athlete")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA page_size")).scalar() == 4096
        assert conn.execute(text("SELECT count(*) FROM users WHERE username = 'old_file_athlete'")).scalar() == 1
    engine.dispose()
