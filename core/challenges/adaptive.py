"""The adaptive challenge policy on the platform: each week's level chosen by the contextual
bandit (``core.challenges.bandit``) from the athlete's context, and learnt from each week's
outcome once the week after it is over.

- **Choosing.** When an athlete's week is assigned, their context (usual week, recent weeks,
  how their past challenges went, their churn risk) is worked out from the same counting
  activities the challenges are measured on; the bandit draws a level; an athlete the
  engagement model puts at risk (``AT_RISK``) never gets more than their usual week. The
  context is kept on the week's sessions challenge, with ``policy = "adaptive"``.
- **Learning.** A week's reward is half whether its sessions challenge was completed and half
  whether the athlete had a counting activity in the seven days after it ended (a declined
  challenge was not completed). The worker learns, in batches, from weeks whose following
  week is over, in one short transaction that updates the saved state and marks the weeks
  learnt, so every outcome is learnt from once, whichever worker gets there first.
"""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag
from core.challenges.badges import Entry
from core.challenges.bandit import FEATURES, LEVELS, LinearThompson, context, reward
from core.challenges.tables import Challenge, ChallengePolicy
from core.storage.base import utcnow
from core.storage.engine import write_transaction

log = logging.getLogger(__name__)

POLICY = "adaptive"
AT_RISK = 0.5  # churn risk from which an athlete's challenge is never above their usual week
RISK_FRESH = timedelta(days=8)  # a risk older than this (the model runs weekly) is not used
LEARN_BATCH = 500


def weekly_sessions(entries: list[Entry], tz: ZoneInfo, monday: date, weeks: int = 8) -> np.ndarray:
    """Counting activities in each of the ``weeks`` weeks before ``monday`` (oldest first)."""
    out = np.zeros(weeks)
    for e in entries:
        back = (monday - e.start.astimezone(tz).date()).days
        if 0 < back <= 7 * weeks:
            out[weeks - 1 - (back - 1) // 7] += 1
    return out


def fresh_risk(risk: float | None, scored_at: datetime | None, now: datetime) -> float | None:
    """A churn risk from the engagement model's weekly run, if recent enough to use."""
    return risk if risk is not None and scored_at is not None and scored_at > now - RISK_FRESH else None


def athlete_context(past: list[tuple[str, int]], entries: list[Entry], tz: ZoneInfo, monday: date, usual: float,
                    risk: float | None) -> np.ndarray:
    """The athlete's context row (``bandit.FEATURES``) for the week beginning ``monday``:
    ``past`` is how their earlier weeks' sessions challenges went, (status, level), oldest first."""
    weeks = weekly_sessions(entries, tz, monday)
    completed = sum(status == "completed" for status, _ in past)
    last_completed = float(past[-1][0] == "completed") if past else 0.5
    last_level = past[-1][1] if past else 1
    if risk is None:  # no model yet: the share of the last two weeks without an activity stands in
        risk = float((weeks[-2:] == 0).mean())
    return context(np.array([usual]), np.array([(weeks[-4:] > 0).mean()]), np.array([weeks[-1]]),
                   np.array([weeks.max()]), np.array([len(past)]), np.array([completed]),
                   np.array([last_completed]), np.array([last_level]), np.array([risk]))


UNREAD = "adaptive-unread"  # where a saved state that cannot be read is kept when learning starts afresh


def saved(s: Session) -> tuple[LinearThompson, bool]:
    """The adaptive policy as learnt so far, and whether a saved state could not be used
    (then a fresh policy, and the reason is logged): a state of another version, of other
    levels or features, or with impossible numbers."""
    row = s.get(ChallengePolicy, POLICY)
    if row is None:
        return LinearThompson(), False
    try:
        policy = LinearThompson.from_state(json.loads(row.state))
        if policy.levels != LEVELS or policy.dim != len(FEATURES):
            raise ValueError(f"state for levels {policy.levels} and {policy.dim} features")
        return policy, False
    except (ValueError, TypeError, KeyError, RecursionError, ArithmeticError) as exc:
        log.error("challenge policy state unreadable, starting afresh (kept as %r): %s", UNREAD, exc)
        return LinearThompson(), True


def load(s: Session) -> LinearThompson:
    """The adaptive policy as learnt so far (a fresh one before the first outcome, or when
    the saved state cannot be used: that is logged)."""
    return saved(s)[0]


def choose(bandit: LinearThompson, X: np.ndarray, risk: float | None, rng: np.random.Generator) -> int:
    level = int(bandit.choose(X, rng)[0])
    return min(level, 0) if risk is not None and risk >= AT_RISK else level


def _outcomes(s: Session, now: datetime, limit: int) -> list[tuple[int, list[float] | None, int, float]]:
    """Weeks to learn from: (challenge id, context, level, reward), their following week over.
    "Active the week after" counts what challenges count: completed, scored, not held. A
    challenge reached that the badge job has not completed yet counts as completed."""
    rows = s.execute(select(Challenge.id, Challenge.user_id, Challenge.context, Challenge.level, Challenge.status,
                            Challenge.deadline, Challenge.progress, Challenge.target)
                     .where(Challenge.policy == POLICY, Challenge.learned_at.is_(None), Challenge.context.is_not(None),
                            Challenge.deadline <= now - timedelta(days=7))
                     .order_by(Challenge.deadline).limit(limit)).all()
    if not rows:
        return []
    starts: dict[int, list[datetime]] = {}
    for uid, start in s.execute(
            select(Activity.user_id, Activity.start_time).join(ActivityFlag, ActivityFlag.activity_id == Activity.id)
            .where(Activity.user_id.in_({r.user_id for r in rows}), Activity.status == "completed",
                   Activity.held.is_(False), Activity.start_time >= min(r.deadline for r in rows),
                   Activity.start_time < max(r.deadline for r in rows) + timedelta(days=7))):
        starts.setdefault(uid, []).append(start)
    out = []
    for cid, user_id, ctx, level, status, deadline, progress, target in rows:
        active = any(deadline <= t < deadline + timedelta(days=7) for t in starts.get(user_id, ()))
        try:
            x = [float(v) for v in json.loads(ctx)]
        except (ValueError, TypeError, RecursionError):
            x = None  # unreadable: marked learnt, learnt nothing from
        done = status == "completed" or (status != "declined" and progress >= target)
        out.append((cid, x, level, float(reward(done, active))))
    return out


def learn(Session: sessionmaker[Session], now: datetime | None = None, limit: int = LEARN_BATCH) -> dict:
    """Learn from up to ``limit`` weeks whose following week is over; what it did."""
    now = now or utcnow()
    with Session() as s:
        outcomes = _outcomes(s, now, limit)
    if not outcomes:
        return {}
    with write_transaction(Session, "challenges") as s:
        row = s.get(ChallengePolicy, POLICY, with_for_update=True)
        if row is None:  # the first outcome ever: the row is made first, so a second worker waits on it
            insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
            s.execute(insert(ChallengePolicy.__table__).on_conflict_do_nothing(index_elements=["name"]),
                      [{"name": POLICY, "state": json.dumps(LinearThompson().state()), "outcomes": 0,
                        "updated_at": now}])
            row = s.get(ChallengePolicy, POLICY, with_for_update=True, populate_existing=True)
        bandit, unread = saved(s)
        if unread:
            s.merge(ChallengePolicy(name=UNREAD, state=row.state, outcomes=row.outcomes, updated_at=now))
            row.outcomes = 0
        ids = [o[0] for o in outcomes]
        still = set(s.scalars(select(Challenge.id).where(Challenge.id.in_(ids), Challenge.learned_at.is_(None))))
        fit = [o for o in outcomes if o[0] in still and o[1] is not None and len(o[1]) == bandit.dim
               and o[2] in bandit.levels]
        if fit:
            bandit.update(np.array([o[1] for o in fit]), np.array([o[2] for o in fit]),
                          np.array([o[3] for o in fit]))
        row.state, row.outcomes, row.updated_at = json.dumps(bandit.state()), row.outcomes + len(fit), now
        s.execute(update(Challenge).where(Challenge.id.in_(still)).values(learned_at=now))
    return {"learned": len(fit), "rewards": round(sum(o[3] for o in fit), 2)}
