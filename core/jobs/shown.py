"""The shown-distance job: work out the distance others are shown of the completed
activities whose figures or whose athlete's hidings changed (``Activity.shown_distance_m``,
None until then; boards leave them out meanwhile).

Activities of athletes who hide nothing (or their whole map) take their own distance, many
in one short transaction. For the others each activity's points are read and cut with no
transaction open (``core.social.shown.shown_distance``), newest first, so this week's
boards are whole again first; the figure is written in a short transaction only if neither
the activity's points nor what its athlete hides changed meanwhile, else the next round
works it out again. Every write follows ``core.social.privacy.hold_hiding``: the lock
first, then the rows, then what is hidden is read again.

Athletes are taken in turns (a cursor over their ids), so athletes whose backlog is long
hold nobody else up; an activity whose points cannot be read now (an archive away) is
tried again ``RETRY_S`` later by this process, not in every round."""

from __future__ import annotations

import logging
import time
import weakref

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from core.activities.shown import hold_hiding, lock_rows, try_hold_hiding
from core.activities.tables import Activity
from core.social.privacy import hidings_of, plain
from core.social.shown import shown_distance
from core.storage.engine import write_transaction
from core.storage.points import count_points

SHOWN_USERS = 200  # athletes looked at per pass
SHOWN_PLAIN_BATCH = 2000  # activities taking their own distance, per transaction
SHOWN_CUT_BATCH = 500  # activities whose points are cut, at most per round
BUDGET_S = 3.0  # a round's passes go on while work is pending, up to about this long
RETRY_S = 600.0  # an activity whose points could not be read waits this long
OWN_SHARE = 0.6  # of the budget, at most, for own distances while cuts wait
JOB = "shown"

log = logging.getLogger(__name__)

__all__ = ["SHOWN_CUT_BATCH", "SHOWN_PLAIN_BATCH", "settle_shown_distances"]


class _Turns:
    """Where the last pass stopped among the athletes with pending activities, and the
    activities to leave alone until a time (their points could not be read)."""

    def __init__(self):
        self.after = 0
        self.waiting: dict[int, float] = {}

    def resting(self, now: float) -> set[int]:
        self.waiting = {a: at for a, at in self.waiting.items() if at > now}
        return set(self.waiting)

    def rest(self, activity_id: int, until: float) -> None:
        if len(self.waiting) < MAX_RESTING:
            self.waiting[activity_id] = until


MAX_RESTING = 10_000
MAX_HIDERS = 5_000  # athletes whose activities are cut, at most, per round (bound parameters)
_TURNS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_NO_BIND = _Turns()


def turns_of(Session: sessionmaker[Session]) -> _Turns:
    """The turns kept for one database, by its engine (a process may work on several:
    tests do)."""
    bind = Session.kw.get("bind")
    if bind is None:
        return _NO_BIND
    if bind not in _TURNS:
        _TURNS[bind] = _Turns()
    return _TURNS[bind]


def _pending_users(s: Session, after: int, limit: int) -> list[int]:
    return [int(u) for u in s.scalars(
        select(Activity.user_id).where(Activity.status == "completed", Activity.shown_distance_m.is_(None),
                                       Activity.user_id > after)
        .group_by(Activity.user_id).order_by(Activity.user_id).limit(limit))]


def _pending(s: Session, users, limit: int, resting: set[int] = frozenset()) -> list[tuple[int, int]]:
    """The athletes' activities whose shown distance is to be worked out, newest first,
    those ``resting`` left out."""
    q = (select(Activity.id, Activity.user_id)
         .where(Activity.status == "completed", Activity.shown_distance_m.is_(None), Activity.user_id.in_(users))
         .order_by(Activity.start_time.desc(), Activity.id.desc()).limit(limit + len(resting)))
    return [(int(a), int(u)) for a, u in s.execute(q).all() if a not in resting][:limit]


def _next_users(Session: sessionmaker[Session], turns: _Turns) -> tuple[list[int], dict]:
    """The next athletes in turn, and what each hides."""
    with Session() as s:
        users = _pending_users(s, turns.after, SHOWN_USERS)
        if not users and turns.after:
            turns.after = 0
            users = _pending_users(s, 0, SHOWN_USERS)
        turns.after = users[-1] if len(users) == SHOWN_USERS else 0
        return users, hidings_of(s, users)


def _own(Session: sessionmaker[Session], users: list[int], limit: int) -> int:
    """Activities of athletes who hide nothing take their own distance; how many."""
    with Session() as s:
        rows = _pending(s, users, limit)
    if not rows:
        return 0
    owner = dict(rows)
    with write_transaction(Session, JOB) as s:
        # The athletes' locks first, then the rows in id order, then what they hide
        # (``core.social.privacy.hold_hiding``).
        held = try_hold_hiding(s, set(owner.values()))
        ids = lock_rows(s, and_(Activity.id.in_(sorted(a for a, u in owner.items() if u in held)),
                                Activity.shown_distance_m.is_(None)))
        if not ids:
            return 0
        now = hidings_of(s, {owner[a] for a in ids})  # a change since: left for the next round
        ids = [a for a in ids if plain(now[owner[a]])]
        if ids:
            s.execute(update(Activity).where(Activity.id.in_(ids))
                      .values(shown_distance_m=func.coalesce(Activity.distance_m, 0.0))
                      .execution_options(synchronize_session=False))
    return len(ids)


def _points_now(s: Session, activity: Activity) -> tuple:
    """What changes with the activity's points: a late fix adds points before the figures
    are worked out again."""
    hot = count_points(s, activity.id) if activity.points_tier == "hot" else None
    return activity.distance_m, activity.point_count, activity.points_tier, hot


def _cut_one(Session: sessionmaker[Session], activity_id: int, user_id: int, done: dict, turns: _Turns) -> None:
    with Session() as s:
        activity = s.get(Activity, activity_id)
        if activity is None or activity.shown_distance_m is not None:
            return
        hiding = hidings_of(s, [user_id])[user_id]
        seen = _points_now(s, activity)
        try:
            metres = shown_distance(s, activity, hiding)
        except Exception:  # its points unreadable for now (an archive away)
            log.warning("working out the shown distance of activity %s failed", activity_id, exc_info=True)
            turns.rest(activity_id, time.time() + RETRY_S)
            done["failed"] += 1
            return
    with write_transaction(Session, JOB) as s:
        hold_hiding(s, [user_id])  # first (``core.social.privacy.hold_hiding``)
        activity = s.get(Activity, activity_id)
        if (activity is None or activity.shown_distance_m is not None or _points_now(s, activity) != seen
                or hidings_of(s, [user_id])[user_id] != hiding):
            done["changed_meanwhile"] += 1
            return
        activity.shown_distance_m = metres
        done["cut"] += 1


def settle_shown_distances(Session: sessionmaker[Session], plain_limit: int = SHOWN_PLAIN_BATCH,
                           cut_limit: int = SHOWN_CUT_BATCH, budget_s: float = BUDGET_S) -> dict:
    """One round; returns what it did (nothing when nothing was pending), and whether it
    left work for the next (``behind``: the worker then goes on at once)."""
    began = time.monotonic()
    done = {"own": 0, "cut": 0, "changed_meanwhile": 0, "failed": 0}
    turns = turns_of(Session)
    # Own distances first, through every athlete in turns (cheap), then the cuts, newest
    # activities first whoever they are of.
    hiders: set[int] = set()
    ends, needed = 0, 1 if turns.after == 0 else 2  # from the first id to the last, once
    more = False  # whether work was left for the next round
    while True:
        if time.monotonic() - began > budget_s * OWN_SHARE:  # the rest of the time for cuts
            more = True
            break
        users, hidings = _next_users(Session, turns)
        if not users:
            break
        own = _own(Session, [u for u in users if plain(hidings[u])], plain_limit)
        done["own"] += own
        more = more or own >= plain_limit
        hiders.update(u for u in users if not plain(hidings[u]))
        ends += turns.after == 0
        if ends >= needed:
            break
    if hiders:
        with Session() as s:
            cut = _pending(s, sorted(hiders)[:MAX_HIDERS], cut_limit, turns.resting(time.time()))
        more = more or len(cut) == cut_limit
        for activity_id, user_id in cut:
            if time.monotonic() - began > budget_s:
                more = True
                break
            _cut_one(Session, activity_id, user_id, done, turns)
    if not any(done.values()):
        return {}
    return {"shown": {**done, "behind": more, "seconds": round(time.monotonic() - began, 3)}}
