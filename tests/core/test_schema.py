"""Migrations run up and down on SQLite and PostgreSQL; SQLite is set up to be crash-safe."""

from sqlalchemy import text

from core.db import make_engine
from core.schema import downgrade, migrate, table_names

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
