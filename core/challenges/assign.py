"""The weekly assignment of personal challenges, the end of each week, and declining.

The worker assigns, every round, the challenges of athletes due for their current week
(each athlete's week is their own time zone's), in batches: who is due is one query (an
activity in the last eight weeks, and a schedule that says so: each athlete planned is due
again at the end of the week assigned, or in an hour when nothing could be assigned), each
athlete's challenges are worked out from their activities with no transaction open and
written in a short one. The level follows the athlete's usual week, one step lower when
they have lapsed, and what they said when declining ("too hard" one step down, "too easy"
one up). Progress is then kept up by the badge job's recount, which
runs whenever one of the athlete's activities changes (``core.challenges.awards``), a late
sync into a week that is over included. A challenge still active and not reached when its
week is over is marked missed; one reached is completed by the recount, whenever it sees it
(a missed one too).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import delete, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities.tables import Activity
from core.challenges import adaptive, churn_store
from core.challenges.awards import CHALLENGE_RECOUNT_WEEKS, counting_entries, recent_activity_rows
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
from core.challenges.tables import DECLINE_REASONS, Challenge, ChallengeSchedule, EngagementRisk
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


def _level(declines: list[tuple[str, str]], lapsed: bool) -> int:
    """The week's level under the fixed rule: one step above the usual week, one below when
    lapsing, moved by what the athlete said when declining any of a week's challenges in the
    last four weeks (``declines``: (week, reason); "too hard" one step down, "too easy" one
    up), between -1 and +3."""
    level = -1 if lapsed else 1
    for _, reason in set(declines):  # one step per week and reason, whichever of the week's challenges it was
        level += {"too_hard": -1, "too_easy": 1}.get(reason, 0)
    return max(-1, min(3, level))


SKIPPED = ("has_week", "other_week_running", "nothing_counts")  # why an athlete got nothing


@dataclass
class WeekPlan:
    user_id: int
    week: str | None  # None: nothing to assign
    rows: list[dict]  # the challenges to insert, as column values
    next_at: datetime  # when the athlete is next due
    failed: bool = False
    skipped: str | None = None  # why nothing is assigned (one of SKIPPED), when not a failure


@dataclass
class _Past:
    """What planning needs of one of the athlete's earlier challenges."""

    week: str
    kind: str
    level: int
    status: str
    decline_reason: str | None
    starts_at: datetime
    deadline: datetime


CONTEXT_WEEKS = 26  # how far back the adaptive policy's context looks at past challenges


def plan_batch(s: Session, user_ids: list[int], now: datetime, week: str | None = None,
               bandit: LinearThompson | None = None, rng: np.random.Generator | None = None) -> list[WeekPlan]:
    """The week's challenges of several athletes, each for ``week`` (their current week by
    default), from four reads for the whole batch (athletes, their recent challenges, their
    activities around the week, their churn risks) and no transaction held open; see
    ``plan_week``. One athlete's odd data fails their plan alone (logged; due again in an hour)."""
    if not user_ids:
        return []
    users = dict(s.execute(select(User.id, User.settings).where(User.id.in_(user_ids))).all())
    weeks, failed = {}, set()
    for uid, settings in users.items():
        try:
            tz = time_zone(settings)
            w = week or current_week(now, tz)
            weeks[uid] = (tz, w, *week_bounds(w, tz))
        except Exception:  # noqa: BLE001 - one athlete's odd settings must not stop everyone's week
            log.exception("challenge assignment failed", extra={"user_id": uid})
            failed.add(uid)
    if not weeks:
        return [WeekPlan(uid, None, [], now + RETRY, failed=uid in failed) for uid in user_ids]
    first = min(b[2] for b in weeks.values())
    last = max(b[3] for b in weeks.values())
    past: dict[int, list[_Past]] = {}
    for row in s.execute(select(Challenge.user_id, Challenge.week, Challenge.kind, Challenge.level, Challenge.status,
                                Challenge.decline_reason, Challenge.starts_at, Challenge.deadline)
                         .where(Challenge.user_id.in_(list(weeks)),
                                (Challenge.deadline > min(first, now) - timedelta(weeks=CONTEXT_WEEKS))
                                | Challenge.week.in_(sorted({b[1] for b in weeks.values()})))
                         .order_by(Challenge.starts_at, Challenge.id)):
        past.setdefault(row.user_id, []).append(_Past(*row[1:]))
    rows: dict[int, list] = {}
    for r in recent_activity_rows(s, list(weeks), first - timedelta(weeks=HISTORY_WEEKS, days=2),
                                  last + timedelta(days=2)):
        rows.setdefault(r.user_id, []).append(r)
    risks = {uid: adaptive.fresh_risk(risk, at, now) for uid, risk, at in s.execute(
        select(EngagementRisk.user_id, EngagementRisk.risk, EngagementRisk.scored_at)
        .where(EngagementRisk.user_id.in_(list(weeks))))}
    plans = []
    for uid in user_ids:
        if uid not in weeks:  # deleted meanwhile, or settings that could not be read
            plans.append(WeekPlan(uid, None, [], now + RETRY, failed=uid in failed))
            continue
        try:
            plans.append(_plan(uid, *weeks[uid], past.get(uid, []), rows.get(uid, []), risks.get(uid), now,
                               bandit, rng))
        except Exception:  # noqa: BLE001 - one athlete's odd data must not stop everyone's week
            log.exception("challenge assignment failed", extra={"user_id": uid})
            plans.append(WeekPlan(uid, None, [], now + RETRY, failed=True))
    return plans


def _plan(user_id: int, tz, week: str, start: datetime, end: datetime, past: list[_Past], rows: list,
          risk: float | None, now: datetime, bandit: LinearThompson | None,
          rng: np.random.Generator | None) -> WeekPlan:
    if any(p.week == week for p in past):
        return WeekPlan(user_id, None, [], end, skipped="has_week")
    # Another week still running over this one (the athlete moved east across a week's
    # end): after it. A week that does not overlap it (an earlier one assigned late) is no bar.
    running = max((p.deadline for p in past if p.deadline > now and p.starts_at < end and p.deadline > start),
                  default=None)
    if running is not None:
        return WeekPlan(user_id, None, [], running, skipped="other_week_running")
    entries = counting_entries(rows)
    u = usual_week(entries, tz, week_monday(week))
    if u is None and not any(start <= e.start < end for e in entries):
        return WeekPlan(user_id, None, [], now + RETRY, skipped="nothing_counts")
    policy, ctx = "fixed", None
    if u is None:
        specs = [WELCOME]
    else:
        at_risk = risk is not None and risk >= adaptive.AT_RISK
        if bandit is not None:
            done = [(p.status, p.level) for p in past if p.kind == "sessions" and p.starts_at < start]
            X = adaptive.athlete_context(done, entries, tz, week_monday(week), u.sessions, risk)
            level = adaptive.choose(bandit, X, risk, rng or np.random.default_rng())
            policy, ctx = adaptive.POLICY, json.dumps([round(float(v), 6) for v in X[0]])
        else:
            said = [(p.week, p.decline_reason) for p in past if p.status == "declined"
                    and start - timedelta(weeks=4) <= p.starts_at < start]
            level = _level(said, u.lapsed)
            level = min(-1, level) if at_risk else level
        specs = build(u, level)[:1] if at_risk else build(u, level)
    out = []
    for spec in specs:
        progress, reached = measure(spec["kind"], spec["sport"], spec["target"], entries, start, end)
        # Reached already (a week assigned late): active, for the recount to complete; a week
        # older than the recount looks back is completed here, or it would stay active.
        status, done = "active", {"completed_at": None, "completed_by": None}
        if end <= now and reached is None:
            status = "missed"
        elif reached is not None and end <= now - timedelta(weeks=CHALLENGE_RECOUNT_WEEKS):
            status, done = "completed", {"completed_at": reached.start, "completed_by": reached.id}
        out.append(dict(user_id=user_id, week=week, starts_at=start, deadline=end, progress=progress,
                        status=status, policy=policy, context=ctx if spec["kind"] == "sessions" else None,
                        created_at=utcnow(), **done, **spec))
    return WeekPlan(user_id, week, out, end)


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
    return plan_batch(s, [user_id], now, week, bandit, rng)[0]


WRITE_CHUNK = 50  # athletes per write transaction: a few milliseconds of lock each


def _assign(Session: sessionmaker[Session], user_ids: list[int], now: datetime, week: str | None, policy: str,
            rng: np.random.Generator | None, schedule: bool, risk_model=None) -> dict:
    done = {"athletes": len(user_ids), "assigned": 0, "challenges": 0, "failed": 0, "skipped": {}}
    if risk_model is not None and user_ids:
        try:  # the risk as of today, so that an athlete slipping now gets the gentler week now
            churn_store.score_and_keep(Session, user_ids, now, risk_model)
        except Exception:  # noqa: BLE001 - without fresh risks, the weekly run's are used
            log.exception("drop-off scoring before the assignment failed")
    with Session() as s:
        bandit = adaptive.load(s) if policy == adaptive.POLICY and user_ids else None
        plans = plan_batch(s, user_ids, now, week, bandit, rng)
    done["failed"] = sum(p.failed for p in plans)
    for p in plans:
        if p.skipped:
            done["skipped"][p.skipped] = done["skipped"].get(p.skipped, 0) + 1
    for k in range(0, len(plans), WRITE_CHUNK):
        chunk = plans[k:k + WRITE_CHUNK]
        try:
            written = write_weeks(Session, chunk, schedule=schedule)
        except Exception:  # noqa: BLE001 - the database refused the chunk: each athlete on their own
            log.exception("challenge write failed; writing athlete by athlete")
            written = {}
            for p in chunk:
                try:
                    written.update(write_weeks(Session, [p], schedule=schedule))
                except Exception:  # noqa: BLE001 - deleted meanwhile, or the database busy: the next round
                    log.exception("challenge write failed", extra={"user_id": p.user_id})
                    done["failed"] += 1
        done["challenges"] += sum(written.values())
        done["assigned"] += sum(1 for n in written.values() if n)
    return done


def assign_due(Session: sessionmaker[Session], now: datetime | None = None, limit: int = ASSIGN_BATCH,
               policy: str = "fixed", rng: np.random.Generator | None = None, risk_model=None) -> dict:
    """One batch: the challenges of up to ``limit`` athletes due for this week's, at levels
    ``policy`` ("adaptive" or "fixed") chooses, with their drop-off risk scored first by
    ``risk_model`` (``core.challenges.churn_store``) when there is one. One athlete's failure is
    logged and leaves the others to go on (they are due again in an hour)."""
    now = now or datetime.now(UTC)
    with Session() as s:
        users = due_athletes(s, now, limit)
    if not users:
        return {}
    done = _assign(Session, users, now, None, policy, rng, schedule=True, risk_model=risk_model)
    out = {"athletes": done["athletes"], "challenges": done["challenges"]}
    if done["failed"]:
        out["failed"] = done["failed"]
    return out


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
                policy: str = "fixed", rng: np.random.Generator | None = None, risk_model=None) -> dict:
    """Assign ``week``'s challenges to every athlete who may get them and has none yet, at
    levels ``policy`` chooses, ASSIGN_BATCH athletes at a time; ``progress`` (if given) is
    called with the number of athletes done after each batch. What is returned counts the
    athletes given nothing under ``skipped``, by reason (SKIPPED): the week's challenges
    already there, another week of theirs running over it (a new time zone), or no
    activity that counts."""
    now = now or datetime.now(UTC)
    week = canonical_week(week)
    with Session() as s:
        users = athletes_for_week(s, week)
    done = {"week": week, "athletes": len(users), "assigned": 0, "challenges": 0, "failed": 0, "skipped": {}}
    for k in range(0, len(users), ASSIGN_BATCH):
        batch = users[k:k + ASSIGN_BATCH]
        got = _assign(Session, batch, now, week, policy, rng, schedule=False, risk_model=risk_model)
        for key in ("assigned", "challenges", "failed"):
            done[key] += got[key]
        for why, n in got["skipped"].items():
            done["skipped"][why] = done["skipped"].get(why, 0) + n
        if progress is not None:
            progress(len(batch))
    return done


def write_weeks(Session: sessionmaker[Session], plans: list[WeekPlan], schedule: bool = True) -> dict[int, int]:
    """Insert several athletes' weeks of challenges (each unless another writer got there
    first) and, with ``schedule``, when each is next due, in one short transaction; how
    many challenges were written for each athlete."""
    written = {p.user_id: 0 for p in plans}
    with write_transaction(Session, "challenges") as s:
        wanted = [p for p in plans if p.rows]
        have = set(s.execute(select(Challenge.user_id, Challenge.week).where(
            Challenge.user_id.in_([p.user_id for p in wanted]),
            Challenge.week.in_(sorted({p.week for p in wanted})))).all()) if wanted else set()
        fresh = [p for p in wanted if (p.user_id, p.week) not in have]
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        conn = s.connection()
        if fresh:
            # One statement for the chunk; a week another process wrote meanwhile is left as
            # it is, and only the rows this statement inserted count as written.
            inserted = conn.execute(insert(Challenge.__table__)
                                    .on_conflict_do_nothing(index_elements=["user_id", "week", "kind"])
                                    .returning(Challenge.__table__.c.user_id),
                                    [c for p in fresh for c in p.rows]).scalars().all()
            for uid in inserted:
                written[uid] += 1
        if schedule:
            stmt = insert(ChallengeSchedule.__table__)
            conn.execute(stmt.on_conflict_do_update(index_elements=["user_id"],
                                                    set_={"next_at": stmt.excluded.next_at}),
                         [{"user_id": p.user_id, "next_at": p.next_at} for p in plans])
    return written


def write_week(Session: sessionmaker[Session], p: WeekPlan, schedule: bool = True) -> int:
    """``write_weeks`` for one athlete: how many challenges were written."""
    return write_weeks(Session, [p], schedule)[p.user_id]


def end_weeks(Session: sessionmaker[Session], now: datetime | None = None, chunk: int = 500) -> int:
    """Mark the challenges still active and not reached after their week as missed, ``chunk``
    per short transaction; returns how many. One reached is left for the badge job's
    recount to complete (a late sync can still complete a missed one)."""
    now = now or datetime.now(UTC)
    total = 0
    while True:
        with Session() as s:
            ids = s.scalars(select(Challenge.id).where(Challenge.status == "active", Challenge.deadline <= now,
                                                       Challenge.progress < Challenge.target)
                            .limit(chunk)).all()
        if not ids:
            return total
        with write_transaction(Session, "challenges") as s:
            total += s.execute(update(Challenge).where(Challenge.id.in_(ids), Challenge.status == "active",
                                                       Challenge.progress < Challenge.target)
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
