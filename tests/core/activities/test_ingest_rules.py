"""Which activities take points (one rule, one message, for a session's ingest and the
ingest server's group commit), the group commit's locked status check, and stored cue
preferences, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlite3
import uuid

import psycopg.errors
import pytest
from sqlalchemy.orm import Session

from core.accounts.users import create_user, update_profile, user_by_id
from core.activities.cues import CuePrefs, save_cue_prefs
from core.activities.ingest import ingest_points, lock_statuses, refusal, require_open
from core.activities.lifecycle import OPEN_STATUSES, ActivityClosed, NotFound, change_status, create_activity
from core.storage.points import fast_insert_connection


def tag() -> str:
    return f"i{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("status", OPEN_STATUSES)
def test_an_open_activity_takes_points(status):
    assert refusal(7, status) is None
    require_open(7, status)


@pytest.mark.parametrize("status", ["completed", "discarded"])
def test_a_closed_activity_is_refused_with_its_status(status):
    error = refusal(7, status)
    assert isinstance(error, ActivityClosed) and error.code == "activity_closed"
    assert str(error) == f"activity 7 is {status}: it takes no more points"
    with pytest.raises(ActivityClosed, match=f"activity 7 is {status}"):
        require_open(7, status)


def test_a_missing_activity_is_not_found():
    error = refusal(7, None)
    assert isinstance(error, NotFound) and str(error) == "no activity 7"


def test_a_session_ingest_refuses_a_closed_activity_with_the_same_error(session):
    activity = create_activity(session, create_user(session, f"{tag()}_closed"), "run")
    change_status(session, activity, "discard")
    with pytest.raises(ActivityClosed) as caught:
        ingest_points(session, activity, [{"seq": 0, "t": 1_700_000_000.0, "lat": 46.0, "lon": 14.5}])
    assert str(caught.value) == str(refusal(activity.id, "discarded"))


def test_cue_preferences_are_stored_and_the_other_settings_kept(session):
    user = create_user(session, f"{tag()}_cues")
    update_profile(session, user, units="imperial")
    prefs = CuePrefs(fields=("time", "pace"), every_km=None, every_min=5.0)
    save_cue_prefs(session, user, prefs)
    session.expire(user)
    stored = user_by_id(session, user.id).settings
    assert CuePrefs.from_settings(stored) == prefs and stored["units"] == "imperial"


def _busy(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return "locked" in str(exc).lower() or "busy" in str(exc).lower()
    return isinstance(exc, psycopg.errors.LockNotAvailable)


def test_the_locked_status_check_reads_existing_activities_and_keeps_writers_out(engine):
    """Statuses of the activities that exist; until the transaction ends, another writer of
    those rows gets a lock error (neither connection waits)."""
    with Session(engine) as s, s.begin():
        user = create_user(s, f"{tag()}_lock")
        open_, closed = create_activity(s, user, "ride"), create_activity(s, user, "run")
        change_status(s, open_, "start")
        change_status(s, closed, "discard")
        s.flush()
        open_id, closed_id = open_.id, closed.id
    ids = [open_id, closed_id]
    dialect = engine.dialect.name
    first = fast_insert_connection(engine, 20, 1024)
    other = fast_insert_connection(engine, 20, 1024)
    try:
        cur = first.cursor()
        assert lock_statuses(cur, dialect, ids + [max(ids) + 10**6]) == {open_id: "active", closed_id: "discarded"}
        mark = "?" if dialect == "sqlite" else "%s"
        writer = other.cursor()
        with pytest.raises(Exception) as caught:
            writer.execute(f"UPDATE activities SET status = 'stopped' WHERE id = {mark}", (open_id,))
        assert _busy(caught.value)
        other.rollback()
        first.rollback()
        # Once the check's transaction has ended, the row is free again.
        writer = other.cursor()
        writer.execute(f"UPDATE activities SET title = title WHERE id = {mark}", (open_id,))
        other.rollback()
    finally:
        first.invalidate()
        other.invalidate()
