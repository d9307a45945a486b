"""The weekly assignment of personal challenges, the end of each week, and declining.

The worker assigns, every round, the challenges of athletes who have none for their current
week (each athlete's week is their own time zone's), in batches: who is due is one indexed
query, each athlete's challenges are worked out from their activities with no transaction
open and written in a short one. Progress is then kept up by the badge job's recount, which
runs whenever one of the athlete's activities changes (``core.challenges.awards``). A
challenge still active when its week is over is marked missed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities.tables import Activity
from core.challenges.badges import time_zone
from core.challenges.personal import (
    HISTORY_WEEKS,
    WELCOME,
    build,
    current_week,
    measure,
    usual_week,
    week_bounds,
    week_monday,
)
from core.challenges.tables import DECLINE_REASONS, Challenge
from core.storage.base import utcnow
from core.storage.engine import write_transaction

ASSIGN_BATCH = 500  # athletes per round; a full batch means the worker is behind


class ChallengeError(ValueError):
    """A request about a challenge that cannot be honoured."""


def due_athletes(s: Session, now: datetime, limit: int = ASSIGN_BATCH) -> list[int]:
    """Athletes with an activity in the last HISTORY_WEEKS weeks and no challenge whose week
    is still running."""
    running = exists().where(Challenge.user_id == Activity.user_id, Challenge.deadline > now)
    # No earlier than the eight weeks before the athlete's Monday: each due athlete gets a week.
    since = now - timedelta(weeks=HISTORY_WEEKS)
    return list(s.scalars(select(Activity.user_id).where(Activity.status == "completed", Activity.held.is_(False),
                                                          Activity.start_time >= since, ~running)
                          .distinct().limit(limit)))


def plan_week(s: Session, user_id: int, now: datetime, week: str | None = None) -> list[Challenge]:
    """The athlete's challenges for ``week`` (their current week by default), with their
    progress so far: from their usual week, or, for an athlete whose first activity is in
    this week, the welcome challenge; none when they had no activity in the eight weeks
    before or this week, or already have that week's challenges."""
    from core.challenges.awards import _rows, counting_entries

    user = s.get(User, user_id)
    if user is None:
        return []
    tz = time_zone(user.settings)
    week = week or current_week(now, tz)
    start, end = week_bounds(week, tz)
    if s.scalars(select(Challenge.id).where(Challenge.user_id == user_id, Challenge.week == week)).first():
        return []
    rows = _rows(s, user_id)
    entries = counting_entries(rows)
    # The usual week from every activity not held, scored or not yet: a baseline needs no verdict.
    u = usual_week(counting_entries(rows, include_unscored=True), tz, week_monday(week))
    if u is None and not any(start <= e.start < end for e in counting_entries(rows, include_unscored=True)):
        return []
    out = []
    for spec in (build(u) if u is not None else [WELCOME]):
        progress, reached = measure(spec["kind"], spec["sport"], spec["target"], entries, start, end)
        out.append(Challenge(user_id=user_id, week=week, starts_at=start.astimezone(UTC),
                             deadline=end.astimezone(UTC), progress=progress,
                             status="completed" if reached else ("missed" if end <= now else "active"),
                             completed_at=reached.start if reached else None,
                             completed_by=reached.id if reached else None, policy="fixed", **spec))
    return out


def assign_due(Session: sessionmaker[Session], now: datetime | None = None, limit: int = ASSIGN_BATCH) -> dict:
    """One batch: the challenges of up to ``limit`` athletes due for this week's."""
    now = now or datetime.now(UTC)
    with Session() as s:
        users = due_athletes(s, now, limit)
    done = {"athletes": 0, "challenges": 0}
    for user_id in users:
        with Session() as s:
            rows = plan_week(s, user_id, now)
        done["athletes"] += 1
        if rows:
            done["challenges"] += write_week(Session, rows)
    return done if users else {}


def athletes_for_week(s: Session, week: str) -> list[int]:
    """Athletes who may get challenges for ``week``: an activity in the HISTORY_WEEKS weeks
    before it (a day's margin each side for time zones)."""
    monday = datetime.combine(week_monday(week), datetime.min.time(), tzinfo=UTC)
    since = monday - timedelta(weeks=HISTORY_WEEKS, days=1)
    return list(s.scalars(select(Activity.user_id).where(Activity.status == "completed", Activity.held.is_(False),
                                                          Activity.start_time >= since,
                                                          Activity.start_time < monday + timedelta(days=1))
                          .distinct().order_by(Activity.user_id)))


def assign_week(Session: sessionmaker[Session], week: str, now: datetime | None = None, progress=None) -> dict:
    """Assign ``week``'s challenges to every athlete who may get them and has none yet;
    ``progress`` (if given) is called with the number of athletes done after each."""
    now = now or datetime.now(UTC)
    week_monday(week)  # refuse anything but an ISO week before any work
    with Session() as s:
        users = athletes_for_week(s, week)
    done = {"week": week, "athletes": len(users), "assigned": 0, "challenges": 0}
    for user_id in users:
        with Session() as s:
            rows = plan_week(s, user_id, now, week)
        if rows:
            written = write_week(Session, rows)
            done["challenges"] += written
            done["assigned"] += bool(written)
        if progress is not None:
            progress(1)
    return done


def write_week(Session: sessionmaker[Session], rows: list[Challenge]) -> int:
    """Insert one athlete's week of challenges in one short transaction, unless another
    writer got there first (then nothing)."""
    with write_transaction(Session, "challenges") as s:
        first = rows[0]
        if s.scalars(select(Challenge.id).where(Challenge.user_id == first.user_id,
                                                Challenge.week == first.week)).first():
            return 0
        s.add_all(rows)
    return len(rows)


def end_weeks(Session: sessionmaker[Session], now: datetime | None = None) -> int:
    """Mark the challenges still active after their week as missed; returns how many."""
    now = now or datetime.now(UTC)
    with write_transaction(Session, "challenges") as s:
        return s.execute(update(Challenge).where(Challenge.status == "active", Challenge.deadline <= now)
                         .values(status="missed")).rowcount or 0


def decline(s: Session, user_id: int, challenge_id: int, reason: str) -> Challenge:
    """The athlete declines one of their active challenges, saying why."""
    if reason not in DECLINE_REASONS:
        raise ChallengeError(f"reason must be one of {', '.join(DECLINE_REASONS)}")
    c = s.get(Challenge, challenge_id, with_for_update=True)
    if c is None or c.user_id != user_id:
        raise ChallengeError("no such challenge")
    if c.status != "active":
        raise ChallengeError(f"this challenge is {c.status}: only an active one can be declined")
    c.status, c.decline_reason = "declined", reason
    s.flush()
    return c


def challenges_of(s: Session, user_id: int, weeks: int = 8, now: datetime | None = None) -> list[Challenge]:
    """The athlete's challenges of the last ``weeks`` weeks, newest week first."""
    now = now or utcnow()
    return list(s.scalars(select(Challenge).where(Challenge.user_id == user_id,
                                                  Challenge.deadline > now - timedelta(weeks=weeks))
                          .order_by(Challenge.starts_at.desc(), Challenge.id)))
