"""The weekly assignment of personal challenges, the end of each week, and declining.

The worker assigns, every round, the challenges of athletes due for their current week
(each athlete's week is their own time zone's), in batches: who is due is one query (an
activity in the last eight weeks, and a schedule that says so: each athlete planned is due
again at the end of the week assigned, or in an hour when nothing could be assigned), each
athlete's challenges are worked out from their activities with no transaction open and
written in a short one. The level follows the athlete's usual week, one step lower when
they have lapsed, and what they said when declining ("too hard" one step down, "too easy"
one up). Progress is then kept up by the badge job's recount, which
runs whenever one of the athlete's activities changes (``core.challenges.awards``). A
challenge still active when its week is over is marked missed.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities.tables import Activity
from core.challenges import adaptive
from core.challenges.awards import activity_rows, counting_entries
from core.challenges.badges import time_zone
from core.challenges.bandit import LinearThompson
from core.challenges.personal import (
    HISTORY_WEEKS,
    WELCOME,
    build,
    current_week,
    iso_week,
    measure,
    usual_week,
    week_bounds,
    week_monday,
)
from core.challenges.tables import DECLINE_REASONS, Challenge, ChallengeSchedule
from core.storage.base import utcnow
from core.storage.engine import write_transaction

log = logging.getLogger(__name__)

ASSIGN_BATCH = 500  # athletes per round; a full batch means the worker is behind
RETRY = timedelta(hours=1)  # an athlete with nothing to assign yet is looked at again after this


class ChallengeError(ValueError):
    """A request about a challenge that cannot be honoured."""


def due_athletes(s: Session, now: datetime, limit: int = ASSIGN_BATCH) -> list[int]:
    """Athletes with an activity in the last HISTORY_WEEKS weeks (none from the future counts)
    whose next assignment is due: never planned, or their scheduled time has come."""
    since = now - timedelta(weeks=HISTORY_WEEKS)
    scheduled = exists().where(ChallengeSchedule.user_id == Activity.user_id, ChallengeSchedule.next_at > now)
    return list(s.scalars(select(Activity.user_id).where(Activity.status == "completed", Activity.held.is_(False),
                                                          Activity.start_time >= since,
                                                          Activity.start_time <= now + timedelta(days=1), ~scheduled)
                          .distinct().limit(limit)))


def _level(s: Session, user_id: int, lapsed: bool, before: datetime) -> int:
    """The week's level: one step above the usual week, one below when lapsing, moved by
    what the athlete said when declining any of a week's challenges in the last four weeks
    ("too hard" one step down, "too easy" one up), between -1 and +3."""
    level = -1 if lapsed else 1
    said = s.execute(select(Challenge.week, Challenge.decline_reason).where(
        Challenge.user_id == user_id, Challenge.status == "declined",
        Challenge.starts_at < before, Challenge.starts_at >= before - timedelta(weeks=4))).all()
    for _, reason in set(said):  # one step per week and reason, whichever of the week's challenges it was
        level += {"too_hard": -1, "too_easy": 1}.get(reason, 0)
    return max(-1, min(3, level))


@dataclass
class WeekPlan:
    user_id: int
    week: str | None  # None: nothing to assign
    rows: list[Challenge]
    next_at: datetime  # when the athlete is next due


def plan_week(s: Session, user_id: int, now: datetime, week: str | None = None,
              bandit: LinearThompson | None = None, rng: np.random.Generator | None = None) -> WeekPlan:
    """The athlete's challenges for ``week`` (their current week by default) with their
    progress so far: from their usual week (scored activities not held), or, for an
    athlete whose first activity is in this week, the welcome challenge. Nothing when they
    have that week's challenges already, or no activity counts yet (then they are due again
    in an hour). A challenge reached already is left for the recount to complete (it
    completes it, and the badges that count completions, at once).

    The level is the adaptive policy's (``bandit``, drawing with ``rng``) or, without one, the
    fixed rule's (``_level``). An athlete the engagement model puts at risk of dropping off
    gets one gentler challenge instead: sessions only, at most their usual week (one below it
    under the fixed rule)."""
    user = s.get(User, user_id)
    if user is None:
        return WeekPlan(user_id, None, [], now + RETRY)
    tz = time_zone(user.settings)
    week = week or current_week(now, tz)
    start, end = week_bounds(week, tz)
    if s.scalars(select(Challenge.id).where(Challenge.user_id == user_id, Challenge.week == week)).first():
        return WeekPlan(user_id, None, [], end)
    # Another week still running (the athlete moved east across a week's end): after it.
    running = s.scalar(select(func.max(Challenge.deadline)).where(Challenge.user_id == user_id,
                                                                   Challenge.deadline > now))
    if running is not None:
        return WeekPlan(user_id, None, [], running)
    entries = counting_entries(activity_rows(s, user_id))
    u = usual_week(entries, tz, week_monday(week))
    if u is None and not any(start <= e.start < end for e in entries):
        return WeekPlan(user_id, None, [], now + RETRY)
    policy, ctx = "fixed", None
    if u is None:
        specs = [WELCOME]
    else:
        risk = adaptive.risk_of(s, user_id, now)
        at_risk = risk is not None and risk >= adaptive.AT_RISK
        if bandit is not None:
            X = adaptive.athlete_context(s, user_id, entries, tz, week_monday(week), start, u.sessions, risk)
            level = adaptive.choose(bandit, X, risk, rng or np.random.default_rng())
            policy, ctx = adaptive.POLICY, json.dumps([round(float(v), 6) for v in X[0]])
        else:
            level = min(-1, _level(s, user_id, u.lapsed, start)) if at_risk else _level(s, user_id, u.lapsed, start)
        specs = build(u, level)[:1] if at_risk else build(u, level)
    rows = []
    for spec in specs:
        progress, _ = measure(spec["kind"], spec["sport"], spec["target"], entries, start, end)
        rows.append(Challenge(user_id=user_id, week=week, starts_at=start, deadline=end, progress=progress,
                              status="missed" if end <= now else "active", policy=policy,
                              context=ctx if spec["kind"] == "sessions" else None, **spec))
    return WeekPlan(user_id, week, rows, end)


def assign_due(Session: sessionmaker[Session], now: datetime | None = None, limit: int = ASSIGN_BATCH,
               policy: str = "fixed", rng: np.random.Generator | None = None) -> dict:
    """One batch: the challenges of up to ``limit`` athletes due for this week's, at levels
    ``policy`` ("adaptive" or "fixed") chooses. One athlete's failure is logged and leaves
    the others to go on (they are due again in an hour)."""
    now = now or datetime.now(UTC)
    with Session() as s:
        users = due_athletes(s, now, limit)
        bandit = adaptive.load(s) if policy == adaptive.POLICY and users else None
    done = {"athletes": 0, "challenges": 0}
    for user_id in users:
        done["athletes"] += 1
        try:
            with Session() as s:
                p = plan_week(s, user_id, now, bandit=bandit, rng=rng)
            done["challenges"] += write_week(Session, p)
        except Exception:  # noqa: BLE001 - one athlete's odd data must not stop everyone's week
            log.exception("challenge assignment failed", extra={"user_id": user_id})
            done["failed"] = done.get("failed", 0) + 1
            try:
                write_week(Session, WeekPlan(user_id, None, [], now + RETRY))
            except Exception:  # noqa: BLE001 - deleted meanwhile, or the database busy: the next round
                log.exception("could not put off the athlete's assignment", extra={"user_id": user_id})
    return done if users else {}


def athletes_for_week(s: Session, week: str) -> list[int]:
    """Athletes who may get challenges for ``week``: an activity in the HISTORY_WEEKS weeks
    before it or in it (a day's margin each side for time zones)."""
    monday = datetime.combine(week_monday(week), datetime.min.time(), tzinfo=UTC)
    since = monday - timedelta(weeks=HISTORY_WEEKS, days=1)
    return list(s.scalars(select(Activity.user_id).where(Activity.status == "completed", Activity.held.is_(False),
                                                          Activity.start_time >= since,
                                                          Activity.start_time < monday + timedelta(days=8))
                          .distinct().order_by(Activity.user_id)))


def assign_week(Session: sessionmaker[Session], week: str, now: datetime | None = None, progress=None,
                policy: str = "fixed", rng: np.random.Generator | None = None) -> dict:
    """Assign ``week``'s challenges to every athlete who may get them and has none yet, at
    levels ``policy`` chooses; ``progress`` (if given) is called with the number of athletes
    done after each."""
    now = now or datetime.now(UTC)
    week = canonical_week(week)
    with Session() as s:
        users = athletes_for_week(s, week)
        bandit = adaptive.load(s) if policy == adaptive.POLICY and users else None
    done = {"week": week, "athletes": len(users), "assigned": 0, "challenges": 0, "failed": 0}
    for user_id in users:
        try:
            with Session() as s:
                p = plan_week(s, user_id, now, week, bandit=bandit, rng=rng)
            written = write_week(Session, p, schedule=False)
            done["challenges"] += written
            done["assigned"] += bool(written)
        except Exception:  # noqa: BLE001 - one athlete's odd data must not stop everyone's week
            log.exception("challenge assignment failed", extra={"user_id": user_id})
            done["failed"] += 1
        if progress is not None:
            progress(1)
    return done


def write_week(Session: sessionmaker[Session], p: WeekPlan, schedule: bool = True) -> int:
    """Insert one athlete's week of challenges (unless another writer got there first) and,
    with ``schedule``, when they are next due, in one short transaction; how many were written."""
    with write_transaction(Session, "challenges") as s:
        written = 0
        if p.rows and not s.scalars(select(Challenge.id).where(Challenge.user_id == p.user_id,
                                                               Challenge.week == p.week)).first():
            try:
                with s.begin_nested():
                    s.add_all(p.rows)
                written = len(p.rows)
            except IntegrityError:  # the same week, written by another process meanwhile
                written = 0
        if schedule:
            row = s.get(ChallengeSchedule, p.user_id)
            if row is None:
                s.add(ChallengeSchedule(user_id=p.user_id, next_at=p.next_at))
            else:
                row.next_at = p.next_at
    return written


def end_weeks(Session: sessionmaker[Session], now: datetime | None = None, chunk: int = 500) -> int:
    """Mark the challenges still active after their week as missed, ``chunk`` per short
    transaction; returns how many."""
    now = now or datetime.now(UTC)
    total = 0
    while True:
        with Session() as s:
            ids = s.scalars(select(Challenge.id).where(Challenge.status == "active", Challenge.deadline <= now)
                            .limit(chunk)).all()
        if not ids:
            return total
        with write_transaction(Session, "challenges") as s:
            total += s.execute(update(Challenge).where(Challenge.id.in_(ids), Challenge.status == "active")
                               .values(status="missed")).rowcount or 0
        if len(ids) < chunk:
            return total


def canonical_week(week: str) -> str:
    """An ISO week written as "YYYY-Www" (2000 to 2100); ValueError for anything else."""
    if not isinstance(week, str) or not re.fullmatch(r"(20\d\d|2100)-W\d\d", week):
        raise ValueError(f"not an ISO week (YYYY-Www, 2000 to 2100): {week!r}")
    return iso_week(week_monday(week))


def decline(s: Session, user_id: int, challenge_id: int, reason: str) -> Challenge:
    """The athlete declines one of their active challenges, saying why."""
    if reason not in DECLINE_REASONS:
        raise ChallengeError(f"reason must be one of {', '.join(DECLINE_REASONS)}")
    c = s.get(Challenge, challenge_id, with_for_update=True)
    if c is None or c.user_id != user_id:
        raise ChallengeError("no such challenge")
    if c.status != "active":
        raise ChallengeError(f"this challenge is {c.status}: only an active one can be declined")
    if c.deadline <= datetime.now(UTC):
        raise ChallengeError("this challenge's week is over")
    if c.progress >= c.target:
        raise ChallengeError("this challenge is reached already")
    c.status, c.decline_reason = "declined", reason
    s.flush()
    return c


def reschedule(s: Session, user_id: int) -> None:
    """Make the athlete due for the weekly assignment now (their time zone changed), in the
    caller's transaction."""
    s.execute(delete(ChallengeSchedule).where(ChallengeSchedule.user_id == user_id))


def challenges_of(s: Session, user_id: int, weeks: int = 8, now: datetime | None = None) -> list[Challenge]:
    """The athlete's challenges of the last ``weeks`` weeks, newest week first."""
    now = now or utcnow()
    return list(s.scalars(select(Challenge).where(Challenge.user_id == user_id,
                                                  Challenge.deadline > now - timedelta(weeks=weeks))
                          .order_by(Challenge.starts_at.desc(), Challenge.id)))
