"""What others are shown of an activity's distance (``Activity.shown_distance_m``), as far
as the activities layer sees it: the lock under which it is set, and setting it after the
figures change. What an athlete hides lives above this layer, in ``core.social.privacy``,
which registers how to settle a figure (``register_settle``); until it has, or when it
cannot tell, the figure is left None and the worker works it out (``core.jobs.shown``).

The lock: on PostgreSQL, a transaction advisory lock per athlete (``hold_hiding``) under
which what they hide is changed, or read to set a shown distance, so that a figure is never
set from what an athlete hid just before a change that commits meanwhile. It is taken first,
before any of the athlete's activity rows is locked, by every transaction that sets a figure
(completing, recomputing, cropping, importing: ``hold_hiding_for``; ``core.jobs.shown``) and
by every change of what is hidden (``core.social.privacy_settings.clear_shown``), so they take turns
and none waits for a row another holds while that one waits for this lock; taken again later
in the same transaction (``settle_shown``), it is already held. Transactions that never take
it (scoring, the ingest server's commits) only make the holder wait. SQLite runs one write
transaction at a time and needs none of it."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.activities.tables import Activity

HIDING_LOCK = 7301  # the first key of the two-key advisory locks on what an athlete hides

_settle: Callable[[Session, Activity], None] | None = None


def register_settle(settle: Callable[[Session, Activity], None]) -> None:
    """How to settle an activity's shown distance (``core.social.privacy`` gives it)."""
    global _settle
    _settle = settle


def hold_hiding(s: Session, user_ids) -> None:
    """Hold the athletes' locks (in id order) until the transaction ends (PostgreSQL)."""
    if s.get_bind().dialect.name != "postgresql":
        return
    for user_id in sorted({int(u) for u in user_ids if u is not None}):
        s.execute(text("SELECT pg_advisory_xact_lock(:kind, :user_id)"), {"kind": HIDING_LOCK, "user_id": user_id})


def try_hold_hiding(s: Session, user_ids) -> set[int]:
    """``hold_hiding`` for those of the athletes whose lock is free now (all of them on
    SQLite): a job that takes many skips the busy ones until its next round, rather than
    holding the others' while it waits."""
    ids = {int(u) for u in user_ids if u is not None}
    if s.get_bind().dialect.name != "postgresql":
        return ids
    return {u for u in sorted(ids) if s.scalar(text("SELECT pg_try_advisory_xact_lock(:kind, :user_id)"),
                                               {"kind": HIDING_LOCK, "user_id": u})}


def hold_hiding_for(s: Session, activity_id: int) -> None:
    """``hold_hiding`` for the athlete of an activity, taken before its row is locked."""
    if s.get_bind().dialect.name == "postgresql":
        hold_hiding(s, [s.scalar(select(Activity.user_id).where(Activity.id == activity_id))])


def settle_shown(s: Session, activity: Activity) -> None:
    """After the activity's figures were worked out (``apply_summary``): its shown distance
    when that is its own (the athlete hides nothing, or the whole map); otherwise it is left
    for the worker (``core.jobs.shown``), which reads the points with no transaction open."""
    s.flush()
    hold_hiding(s, [activity.user_id])  # held already by a transaction that took it first, as it should
    activity.shown_distance_m = None
    if _settle is not None:
        _settle(s, activity)


def lock_rows(s: Session, where) -> list[int]:
    """Lock the activity rows ``where`` holds in id order (PostgreSQL), so that two
    transactions locking several never wait for each other in a cycle; returns their ids."""
    q = select(Activity.id).where(where).order_by(Activity.id)
    if s.get_bind().dialect.name == "postgresql":
        # FOR NO KEY UPDATE, as the UPDATE that follows: rows that refer to an activity
        # (points, events, route matches, awards) can still be written meanwhile.
        q = q.with_for_update(key_share=True)
    return [int(a) for a in s.scalars(q)]
