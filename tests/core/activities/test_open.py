"""Open activities: which count as live, and the worker closing abandoned ones."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from core.accounts.users import create_user
from core.activities.ingest import point_rows
from core.activities.lifecycle import change_status, create_activity
from core.activities.open import ABANDONED_AFTER_S, LIVE_RECENT_S, close_abandoned, is_live
from core.activities.tables import Activity, ActivityEvent
from core.storage.engine import WRITE_LOCKS
from core.storage.points import count_points, insert_points


def track(t0: float, n: int = 60, step: float = 5.0) -> list[dict]:
    return [{"seq": k, "t": t0 + k * step, "lat": 46.05 + k * step * 3 / 111_180, "lon": 14.5} for k in range(n)]


def open_activity(Session, t0: float | None, created: float, status: str = "active") -> int:
    """An open run created at ``created`` with points from ``t0`` (none when None)."""
    with Session() as s, s.begin():
        user = create_user(s, f"open_{uuid.uuid4().hex[:10]}")
        a = create_activity(s, user, "run")
        a.created_at = datetime.fromtimestamp(created, tz=UTC)
        if status != "created":
            change_status(s, a, "start", at=created)
        if status == "paused":
            change_status(s, a, "pause", at=(t0 or created) + 150)
        if t0 is not None:
            insert_points(s, point_rows(a.id, track(t0)))
        return a.id


def test_only_activities_with_a_recent_point_are_live(engine):
    """A point within LIVE_RECENT_S makes an open activity live; an older one does not, nor
    does a completed activity; a fresh activity without points is live."""
    Session = sessionmaker(engine, expire_on_commit=False)
    now = time.time()
    recent = open_activity(Session, now - 300, now - 400)
    stale = open_activity(Session, now - LIVE_RECENT_S - 400, now - LIVE_RECENT_S - 500)
    fresh = open_activity(Session, None, now - 10, status="created")
    with Session() as s:
        assert is_live(s, s.get(Activity, recent), now)
        assert not is_live(s, s.get(Activity, stale), now)
        assert is_live(s, s.get(Activity, fresh), now)


def test_the_worker_closes_activities_abandoned_for_a_day(engine):
    """Silent for a day: completed from its points (stopped after the last one), or discarded
    without points; a recent one and one whose device is still sending stay open."""
    Session = sessionmaker(engine, expire_on_commit=False)
    now = time.time()
    old = now - ABANDONED_AFTER_S - 3600
    with_points = open_activity(Session, old, old - 60)
    paused = open_activity(Session, old, old - 60, status="paused")
    empty = open_activity(Session, None, old)
    still_sending = open_activity(Session, now - 120, old)
    recent = open_activity(Session, now - 3600, now - 3700)
    WRITE_LOCKS.snapshot(reset=True)
    close_abandoned(Session, now=now, limit=10_000)
    with Session() as s:
        done = s.get(Activity, with_points)
        assert done.status == "completed" and done.point_count == 60
        assert done.distance_m > 500 and done.completed_at.timestamp() > old
        commands = s.scalars(select(ActivityEvent.command).where(ActivityEvent.activity_id == with_points)
                             .order_by(ActivityEvent.id)).all()
        assert commands == ["start", "stop", "complete"]
        assert s.get(Activity, paused).status == "completed"
        assert s.get(Activity, paused).moving_time_s < s.get(Activity, with_points).moving_time_s
        assert s.get(Activity, empty).status == "discarded"
        assert s.get(Activity, still_sending).status == "active"
        assert s.get(Activity, recent).status == "active"
    locks = WRITE_LOCKS.snapshot()["close_abandoned"]
    assert locks["count"] >= 3  # one short transaction per closed activity
    # A second pass finds nothing more to do.
    assert close_abandoned(Session, now=now, limit=10_000) == {"completed": 0, "discarded": 0}


def unfinished_import(Session, created: float, t0: float, n: int = 60) -> int:
    """What an upload whose process died midway leaves: a "created" activity from a file,
    with the first ``n`` of its points (from ``t0``), created at ``created``."""
    with Session() as s, s.begin():
        user = create_user(s, f"imp_{uuid.uuid4().hex[:10]}")
        a = create_activity(s, user, "ride", visibility="private", source="upload")
        a.created_at = datetime.fromtimestamp(created, tz=UTC)
        insert_points(s, point_rows(a.id, track(t0, n)))
        return a.id


def test_the_worker_deletes_an_import_that_died_a_day_ago(engine):
    """An unfinished import created over a day ago is deleted with its points, whatever the
    time of its points (a file recorded just now, or years ago); one created an hour ago may
    still be running and is left alone."""
    Session = sessionmaker(engine, expire_on_commit=False)
    now = time.time()
    old = now - ABANDONED_AFTER_S - 3600
    years_old = unfinished_import(Session, old, now - 3 * 365 * 86400, n=2500)
    recorded_late = unfinished_import(Session, old, now - 1800)
    running = unfinished_import(Session, now - 3600, now - 7 * 86400)
    WRITE_LOCKS.snapshot(reset=True)
    done = close_abandoned(Session, now=now, limit=10_000)
    assert done["discarded"] >= 2  # the database is shared with other tests
    with Session() as s:
        assert s.get(Activity, years_old) is None and count_points(s, years_old) == 0
        assert s.get(Activity, recorded_late) is None and count_points(s, recorded_late) == 0
        assert s.get(Activity, running).status == "created" and count_points(s, running) == 60
    # The 2,500 points went in chunks: more than one transaction for that activity alone.
    assert WRITE_LOCKS.snapshot()["close_abandoned"]["count"] >= 4
