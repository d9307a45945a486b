"""The ingest server's own driver connection (set up for ``FastInsert``, never pooled) and
the SQLite WAL checkpoint, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.accounts.users import create_user
from core.storage.engine import checkpoint_wal
from core.storage.points import fast_insert_connection


def _pragma(raw, name: str):
    cur = raw.cursor()
    try:
        cur.execute(f"PRAGMA {name}")
        return cur.fetchone()[0]
    finally:
        cur.close()


def test_the_fast_connection_never_waits_for_a_lock_and_is_set_up_for_fast_inserts(engine):
    raw = fast_insert_connection(engine, 20, 2048)
    try:
        if engine.dialect.name == "sqlite":
            assert _pragma(raw, "foreign_keys") == 0
            assert _pragma(raw, "busy_timeout") == 0
            assert _pragma(raw, "wal_autocheckpoint") == 0
            assert _pragma(raw, "cache_size") == -2048
        else:
            cur = raw.cursor()
            cur.execute("SHOW lock_timeout")
            assert cur.fetchone()[0] == "20ms"
            cur.close()
            raw.rollback()
    finally:
        raw.invalidate()
    # The pool's connections keep the usual settings.
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0
        else:
            assert conn.execute(text("SHOW lock_timeout")).scalar() == "0"


def test_a_checkpoint_copies_every_committed_wal_frame(sqlite_engine):
    with Session(sqlite_engine) as s, s.begin():
        create_user(s, f"w{uuid.uuid4().hex[:8]}")
    frames, copied = checkpoint_wal(sqlite_engine)
    assert frames > 0 and copied == frames
