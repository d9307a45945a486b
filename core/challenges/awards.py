"""Awarding badges: a job that recounts the badges of athletes whose activities changed,
and the activities that count for them (``counting_entries``). What the pages, the command
line and the ingest server read of badges is in ``core.challenges.award_reads``.

An athlete is due for a recount when one of their completed activities has been scored
(a flagged one is held, and a held activity never counts) and matched against the routes
but the job has not seen it, or has seen it otherwise (held or released by a moderator,
cropped, changed by a late fix, matched to a route found later), when one it saw was
deleted, and when one it saw dated ahead (a device's clock) starts to count; an activity
the route matcher looks at again counts meanwhile as the job last saw it. The recount
evaluates the whole catalogue on all their counting activities (``core.challenges.badges``)
and brings the awards to match: a badge is awarded once per athlete (a unique index; a
re-scored or re-synced activity finds it there), withdrawn with the reason when it is no
longer earned (a confirmed cheat, a crop below the mark, a deletion), and reinstated if
earned again.
Each athlete is worked out with no transaction open and written in one short one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from sqlalchemy import delete, exists, insert, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import User
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag
from core.challenges.badges import Badge, Entry, Outcome, badge, catalogue, evaluate, time_zone
from core.challenges.personal import measure
from core.challenges.tables import BadgeActivity, BadgeAward, Challenge
from core.routes.tables import RouteActivity
from core.storage.base import utcnow
from core.storage.engine import write_transaction

log = logging.getLogger(__name__)

BADGE_BATCH = 50  # athletes recounted per round; a full batch means the worker is behind
CHALLENGE_RECOUNT_WEEKS = 12  # challenges older than this keep how they ended
SNAPSHOT_CHUNK = 500  # snapshots written per transaction

AHEAD = timedelta(days=1)  # an activity dated later than this after now counts for nothing (yet)


def pending_users(s: Session, limit: int = BADGE_BATCH) -> list[int]:
    """Athletes whose badges are due for a recount, at most ``limit``."""
    changed = or_(BadgeActivity.activity_id.is_(None), BadgeActivity.held != Activity.held,
                  BadgeActivity.points != Activity.point_count,
                  BadgeActivity.distance_m.is_distinct_from(Activity.distance_m),
                  BadgeActivity.start_time.is_distinct_from(Activity.start_time),
                  BadgeActivity.flag.is_distinct_from(ActivityFlag.status),
                  BadgeActivity.route_id.is_distinct_from(RouteActivity.route_id))
    users = list(s.scalars(
        select(Activity.user_id).join(ActivityFlag, ActivityFlag.activity_id == Activity.id)
        .join(RouteActivity, RouteActivity.activity_id == Activity.id)
        .outerjoin(BadgeActivity, BadgeActivity.activity_id == Activity.id)
        .where(Activity.status == "completed", changed).distinct().limit(limit)))
    if len(users) < limit:
        gone = ~exists().where(Activity.id == BadgeActivity.activity_id)
        users += [u for u in s.scalars(select(BadgeActivity.user_id).where(gone).distinct().limit(limit))
                  if u not in users]
    if len(users) < limit:  # an activity dated ahead whose time to count has come
        arrived = select(BadgeActivity.user_id).where(BadgeActivity.counts_from <= utcnow()).distinct().limit(limit)
        users += [u for u in s.scalars(arrived) if u not in users]
    if len(users) < limit:
        # A challenge reached but not completed (reached when it was assigned, or its week
        # ended before the recount saw it): the recount completes it.
        since = utcnow() - timedelta(weeks=CHALLENGE_RECOUNT_WEEKS)
        reached = select(Challenge.user_id).where(Challenge.status.in_(("active", "missed")),
                                                  Challenge.progress >= Challenge.target,
                                                  Challenge.deadline > since).distinct().limit(limit)
        users += [u for u in s.scalars(reached) if u not in users]
    if len(users) < limit:
        orphaned = select(BadgeAward.user_id).where(BadgeAward.activity_id.is_(None),
                                                     BadgeAward.withdrawn_at.is_(None)).distinct().limit(limit)
        users += [u for u in s.scalars(orphaned) if u not in users]
    return users[:limit]


@dataclass
class Plan:
    """One athlete's recount, worked out: the snapshots to write, those to drop, and the
    awards to add, move, withdraw or reinstate."""

    user_id: int
    snapshots: list[dict] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    award: list[tuple[Badge, Entry]] = field(default_factory=list)
    move: list[tuple[int, Entry]] = field(default_factory=list)  # (award id, new earning activity)
    withdraw: list[tuple[int, str, int | None]] = field(default_factory=list)  # (award id, reason, activity)
    reasons: list[tuple[int, str]] = field(default_factory=list)  # withdrawn awards whose reason firmed up
    challenges: list[dict] = field(default_factory=list)  # progress, status and completion changed


def _activity_columns():
    return (select(Activity.id, Activity.user_id, Activity.sport, Activity.start_time, Activity.distance_m,
                   Activity.elevation_gain_m, Activity.moving_time_s, Activity.held, Activity.point_count,
                   ActivityFlag.status.label("flag"), RouteActivity.route_id,
                   RouteActivity.activity_id.label("routed"))
            .outerjoin(ActivityFlag, ActivityFlag.activity_id == Activity.id)
            .outerjoin(RouteActivity, RouteActivity.activity_id == Activity.id))


def activity_rows(s: Session, user_id: int):
    """The athlete's completed activities, with whether each is scored, its flag's status
    and its route."""
    return s.execute(_activity_columns().where(Activity.user_id == user_id, Activity.status == "completed")).all()


def recent_activity_rows(s: Session, user_ids: list[int], since: datetime, until: datetime):
    """The completed activities of several athletes started within [since, until), as
    ``activity_rows`` gives them (with ``user_id``), in one query."""
    return s.execute(_activity_columns().where(Activity.user_id.in_(user_ids), Activity.status == "completed",
                                               Activity.start_time >= since, Activity.start_time < until)).all()


def counted_figure(value) -> float:
    """A stored figure as the rules take it: missing, negative or not finite is nothing."""
    return float(value) if value is not None and math.isfinite(value) and value > 0 else 0.0


def _entry(r) -> Entry:
    return Entry(id=r.id, sport=r.sport, start=r.start_time, distance_m=counted_figure(r.distance_m),
                 climb_m=counted_figure(r.elevation_gain_m), moving_s=counted_figure(r.moving_time_s), route_id=r.route_id)


EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # an activity dated before counts for nothing (a device's bad clock)


def counting_entries(rows, include_unscored: bool = False) -> list[Entry]:
    """The activities that count: scored (or any, with ``include_unscored``), not held, dated
    between 2000 and tomorrow (a date outside is a device's bad clock, not a run)."""
    latest = utcnow() + AHEAD
    return [_entry(r) for r in rows
            if (include_unscored or r.flag is not None) and not r.held and r.start_time is not None
            and EARLIEST <= r.start_time <= latest]


def _what_happened(activity_id: int, r, before: BadgeActivity | None, gone: list[int]) -> str | None:
    """What took an activity's part in the badges away, in words (None: nothing)."""
    if activity_id in gone:
        return f"activity {activity_id} was deleted"
    if r is None:
        return None
    if r.flag == "confirmed":
        return f"a moderator confirmed activity {activity_id} as irregular"
    if r.held:
        return f"activity {activity_id} is held for review"
    if before is not None and before.points >= 0 and (r.distance_m or 0.0) < (before.distance_m or 0.0):
        return f"activity {activity_id} was cropped"
    return None


def _cause(a: BadgeAward, rows_by_id: dict, seen: dict[int, BadgeActivity], gone: list[int],
           new_zone: bool) -> tuple[str, int | None]:
    """Why badge ``a`` is withdrawn: what happened to the activity that earned it; else to an
    activity that counted before this recount (a total or a streak it was part of); else the
    athlete's new time zone; else that the activities no longer reach the mark."""
    if a.activity_id is not None:
        why = _what_happened(a.activity_id, rows_by_id.get(a.activity_id), seen.get(a.activity_id), gone)
        if why:
            return why, a.activity_id
    if gone:
        return f"activity {gone[0]} was deleted", gone[0]
    for activity_id, before in seen.items():
        r = rows_by_id.get(activity_id)
        counted = not before.held and before.points >= 0
        why = _what_happened(activity_id, r, before, gone) if counted else None
        if why:
            return why, activity_id
    if new_zone:
        return "your time zone changed, and with it your weeks, months and hours", None
    return "the activities that earned it no longer reach the mark", None


def plan(s: Session, user_id: int, now: datetime | None = None) -> Plan | None:
    """Work out one athlete's recount (reads only); None when the athlete is gone."""
    user = s.get(User, user_id)
    if user is None:
        return None
    seen = {b.activity_id: b for b in s.scalars(select(BadgeActivity).where(BadgeActivity.user_id == user_id))}
    rows = _counted_rows(activity_rows(s, user_id), seen)
    by_id = {r.id: r for r in rows}
    existing = set(s.scalars(select(Activity.id).where(Activity.id.in_(list(seen))))) if seen else set()
    p = Plan(user_id)
    p.gone = [a for a in seen if a not in existing]
    new_zone = any(b.points < 0 for b in seen.values())
    latest = utcnow() + AHEAD
    for r in rows:
        b = seen.get(r.id)
        counts_from = r.start_time - AHEAD if r.start_time is not None and r.start_time > latest else None
        if (b is None or b.held != r.held or b.points != r.point_count or b.distance_m != r.distance_m
                or b.start_time != r.start_time or b.flag != r.flag or b.route_id != r.route_id
                or b.counts_from != counts_from):
            p.snapshots.append({"activity_id": r.id, "user_id": user_id, "held": bool(r.held), "flag": r.flag,
                                "points": r.point_count, "distance_m": r.distance_m, "start_time": r.start_time,
                                "route_id": r.route_id, "counts_from": counts_from, "new": b is None})
    # Dated ahead, then no longer counted at all (its score taken back): nothing to wait for.
    p.snapshots += [{"activity_id": a, "user_id": user_id, "counts_from": None, "new": False}
                    for a, b in seen.items() if b.counts_from is not None and a not in by_id and a in existing]
    entries = counting_entries(rows)
    p.challenges, completions = _challenges(s, user_id, entries, now or utcnow())
    outcome: Outcome = evaluate(entries, time_zone(user.settings), now=now, completions=completions)
    awards = {a.code: a for a in s.scalars(select(BadgeAward).where(BadgeAward.user_id == user_id))}
    known = {b.code for b in catalogue()}
    for code, e in outcome.earned.items():
        a = awards.get(code)
        if a is None or a.withdrawn_at is not None:
            p.award.append((badge(code), e))
        elif a.activity_id != e.id:  # a crop, a late sync or a new time zone: the first to reach it now
            p.move.append((a.id, e))
    # A badge dropped from the catalogue stays with its athlete, unless its activity is gone.
    lost = [a for code, a in awards.items() if a.withdrawn_at is None and code not in outcome.earned
            and (code in known or a.activity_id is None)]
    p.withdraw = [(a.id, *_cause(a, by_id, seen, p.gone, new_zone)) for a in lost]
    # Withdrawn while held for review, then confirmed by a moderator, or released (cropped,
    # or the flag dismissed) without earning it again: say so, not "held" any more.
    for a in awards.values():
        r = by_id.get(a.withdrawn_activity_id) if a.withdrawn_at is not None else None
        if r is None:
            continue
        if r.flag == "confirmed":
            reason = f"a moderator confirmed activity {a.withdrawn_activity_id} as irregular"
        elif not r.held and a.code not in outcome.earned \
                and a.withdrawn_reason == f"activity {a.withdrawn_activity_id} is held for review":
            reason = f"after its review, activity {a.withdrawn_activity_id} no longer earns it"
        else:
            continue
        if a.withdrawn_reason != reason:
            p.reasons.append((a.id, reason))
    return p


def _counted_rows(rows, seen: dict[int, BadgeActivity]) -> list:
    """The rows the recount counts: scored and matched against the routes; an activity the
    route matcher is looking at again (a new route nearby) counts with the route the job
    saw it with until the matcher is done, so that nothing is withdrawn meanwhile."""
    out = []
    for r in rows:
        if r.flag is None:
            continue
        if r.routed is not None:
            out.append(r)
        elif r.id in seen:
            out.append(SimpleNamespace(**{**r._asdict(), "route_id": seen[r.id].route_id}))
    return out


def _challenges(s: Session, user_id: int, entries: list[Entry], now: datetime) -> tuple[list[dict], list[Entry]]:
    """The athlete's challenges of the last CHALLENGE_RECOUNT_WEEKS weeks measured again on
    their counting activities (a confirmed cheat or a crop can take a completion back; a
    late sync can make one): the changes, and the activities that completed a challenge
    (for the badges that count them)."""
    by_id = {e.id: e for e in entries}
    changes, completions = [], []
    since = now - timedelta(weeks=CHALLENGE_RECOUNT_WEEKS)
    for c in s.scalars(select(Challenge).where(Challenge.user_id == user_id)):
        if c.deadline > since:
            progress, reached = measure(c.kind, c.sport, c.target, entries, c.starts_at, c.deadline)
            status = c.status if c.status == "declined" else (
                "completed" if reached else ("missed" if c.deadline <= now else "active"))
            done_by = reached.id if reached else None
            if (progress, status, done_by) != (c.progress, c.status, c.completed_by):
                changes.append({"id": c.id, "progress": progress, "status": status, "completed_by": done_by,
                                "completed_at": reached.start if reached else None})
        else:
            status, done_by = c.status, c.completed_by
        if status == "completed" and done_by in by_id:
            completions.append(by_id[done_by])
    return changes, completions


def _write_snapshots(s: Session, snapshots: list[dict], now: datetime) -> None:
    """What the job saw, in two statements (new rows, changed rows)."""
    rows = [{**{k: v for k, v in snap.items() if k != "new"}, "seen_at": now} for snap in snapshots]
    new = [r for r, snap in zip(rows, snapshots) if snap["new"]]
    changed = [r for r, snap in zip(rows, snapshots) if not snap["new"]]
    if new:
        s.execute(insert(BadgeActivity), new)
    if changed:
        s.execute(update(BadgeActivity), changed)


def write(Session: sessionmaker[Session], p: Plan) -> dict:
    """Write one athlete's recount: the awards and challenges with the first SNAPSHOT_CHUNK
    snapshots in one short transaction, the other snapshots a chunk per transaction after
    (an athlete with a long history holds the write lock no longer; a crash in between
    leaves them due, and the recount again changes nothing). Returns what changed."""
    now = utcnow()
    first, rest = p.snapshots[:SNAPSHOT_CHUNK], p.snapshots[SNAPSHOT_CHUNK:]
    with write_transaction(Session, "badges") as s:
        if p.gone:
            s.execute(delete(BadgeActivity).where(BadgeActivity.activity_id.in_(p.gone)))
        _write_snapshots(s, first, now)
        awards = {a.code: a for a in s.scalars(select(BadgeAward).where(BadgeAward.user_id == p.user_id))}
        for b, e in p.award:
            a = awards.get(b.code)
            if a is None:
                s.add(BadgeAward(user_id=p.user_id, code=b.code, activity_id=e.id, earned_at=e.start, awarded_at=now))
            else:
                a.activity_id, a.earned_at, a.awarded_at = e.id, e.start, now
                a.withdrawn_at = a.withdrawn_reason = a.withdrawn_activity_id = None
        by_id = {a.id: a for a in awards.values()}
        for award_id, e in p.move:
            a = by_id.get(award_id)
            if a is not None:
                a.activity_id, a.earned_at = e.id, e.start
        for change in p.challenges:
            c = s.get(Challenge, change["id"])
            if c is not None:
                if c.status == "declined":  # declined since the plan was made: it stays declined
                    change = {**change, "status": "declined"}
                for key, value in change.items():
                    setattr(c, key, value)
        for award_id, reason, cause in p.withdraw:
            a = by_id.get(award_id)
            if a is not None and a.withdrawn_at is None:
                a.withdrawn_at, a.withdrawn_reason, a.withdrawn_activity_id = now, reason, cause
        for award_id, reason in p.reasons:
            a = by_id.get(award_id)
            if a is not None and a.withdrawn_at is not None:
                a.withdrawn_reason = reason
    for k in range(0, len(rest), SNAPSHOT_CHUNK):
        with write_transaction(Session, "badges") as s:
            _write_snapshots(s, rest[k:k + SNAPSHOT_CHUNK], now)
    return {"awarded": len(p.award), "withdrawn": len(p.withdraw), "challenges": len(p.challenges)}


def award_pending(Session: sessionmaker[Session], limit: int = BADGE_BATCH, now: datetime | None = None) -> dict:
    """Recount up to ``limit`` athletes due for it; returns counts of what changed."""
    with Session() as s:
        users = pending_users(s, limit)
    done = {"athletes": 0, "awarded": 0, "withdrawn": 0, "challenges": 0}
    for user_id in users:
        try:
            with Session() as s:
                p = plan(s, user_id, now=now)
            if p is None:
                continue
            changed = write(Session, p)
        except Exception:  # noqa: BLE001 - one athlete's failure (a race with a deletion) waits for the next round
            log.exception("badge recount failed", extra={"user_id": user_id})
            done["failed"] = done.get("failed", 0) + 1
            continue
        done["athletes"] += 1
        done["awarded"] += changed["awarded"]
        done["withdrawn"] += changed["withdrawn"]
        done["challenges"] += changed["challenges"]
    return done if users else {}


def recount_user(s: Session, user_id: int) -> None:
    """Make the athlete's badges due for a recount (their time zone changed), in the caller's
    transaction: one statement marks what the job saw of their activities as out of date."""
    s.execute(update(BadgeActivity).where(BadgeActivity.user_id == user_id).values(points=-1))


# Reads -----------------------------------------------------------------------------------
