"""What the gamification jobs cost: the weekly assignment's athletes per second, and the badge
recount of one athlete with a long history (its time and its longest write transaction).

    .venv/bin/python -m bench.challenges [--athletes 5000] [--history 20000]

A fresh SQLite file in a temporary directory. ``--athletes`` athletes with eight weeks of
three activities a week each (stored as scoring and route matching leave them) are assigned
this week's challenges as the worker does (``assign_due`` in batches of 500, each athlete's
drop-off risk scored first by a model fitted on a generated population), and their
badges counted; then one athlete with ``--history`` activities is recounted from nothing,
and again after a change of time zone (every snapshot out of date). Prints one JSON object;
``minutes_for_1m_athletes_one_process`` extrapolates the assignment rate measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert
from sqlalchemy.orm import sessionmaker

from core.accounts.tables import User
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag
from core.challenges.assign import ASSIGN_BATCH, assign_due
from core.challenges.awards import award_pending, recount_user
from core.routes.tables import RouteActivity
from core.storage.engine import WRITE_LOCKS, make_engine
from core.storage.schema import migrate


def store(S, user_ids: list[int], per_user: int, start: datetime, step: timedelta, first_id: int) -> int:
    """``per_user`` activities for each athlete, ``step`` apart from ``start``, scored and matched."""
    rows, flags, routed = [], [], []
    aid = first_id
    for uid in user_ids:
        for k in range(per_user):
            aid += 1
            rows.append(dict(id=aid, user_id=uid, sport="run", status="completed", title="", visibility="public",
                             source="demo", start_time=start + k * step, distance_m=5000.0 + (aid * 37) % 6000,
                             moving_time_s=1800.0, elevation_gain_m=float(aid % 60), point_count=360, held=False))
            flags.append(dict(activity_id=aid, user_id=uid, sport="run", score=0.1, status="clear", reasons=[],
                              codes="", verdict={}, features={}))
            routed.append(dict(activity_id=aid, user_id=uid, visibility="public", held=False, points=360))
    with S() as s, s.begin():
        for chunk in range(0, len(rows), 5000):
            s.execute(insert(Activity), rows[chunk:chunk + 5000])
            s.execute(insert(ActivityFlag), flags[chunk:chunk + 5000])
            s.execute(insert(RouteActivity), routed[chunk:chunk + 5000])
    return aid


def risks_scored(S) -> int:
    from sqlalchemy import func, select

    from core.challenges.tables import EngagementRisk

    with S() as s:
        return s.scalar(select(func.count()).select_from(EngagementRisk))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--athletes", type=int, default=5000)
    ap.add_argument("--history", type=int, default=20000)
    ap.add_argument("--policy", choices=("adaptive", "fixed"), default="adaptive",
                    help="how levels are chosen (default: adaptive, the platform's default)")
    ap.add_argument("--no-risk", action="store_true",
                    help="assign without scoring drop-off risks first (as when no model has been trained yet)")
    args = ap.parse_args()
    folder = tempfile.mkdtemp(prefix="bench_challenges_")
    engine = make_engine(f"sqlite:///{os.path.join(folder, 'bench.db')}")
    migrate(engine)
    S = sessionmaker(engine, expire_on_commit=False)
    now = datetime.now(UTC)
    with S() as s, s.begin():
        s.execute(insert(User), [dict(id=i + 1, username=f"athlete{i}", name=f"Athlete {i}", role="athlete",
                                      default_visibility="public", settings={}) for i in range(args.athletes + 1)])
    last = store(S, list(range(1, args.athletes + 1)), 24, now - timedelta(weeks=8), timedelta(hours=56), 0)

    risk_model = None
    if not args.no_risk:  # a drop-off model fitted on a generated population, as the weekly run would save one
        from core.challenges.churn_evaluation import evaluate
        from core.challenges.churn_history import Daily
        from core.challenges.habits import generate

        risk_model = evaluate(Daily.of(generate(800, 30, 1)), 1)[1]
    WRITE_LOCKS.snapshot(reset=True)
    began = time.perf_counter()
    assigned = athletes = 0
    while True:
        done = assign_due(S, now=now, policy=args.policy, risk_model=risk_model)
        if not done:
            break
        athletes += done["athletes"]
        assigned += done["challenges"]
        if done["athletes"] < ASSIGN_BATCH:
            break
    seconds = time.perf_counter() - began
    locks = WRITE_LOCKS.snapshot(reset=True).get("challenges", {})
    out = {"athletes": athletes, "challenges": assigned, "assign_seconds": round(seconds, 2),
           "assign_athletes_per_s": round(athletes / seconds, 1),
           "assign_write_lock_p99_ms": locks.get("p99_ms"), "assign_write_lock_max_ms": locks.get("max_ms"),
           "minutes_for_1m_athletes_one_process": round(1_000_000 / (athletes / seconds) / 60, 1),
           "policy": args.policy, "risks_scored": risks_scored(S)}

    big = args.athletes + 1
    while award_pending(S, limit=500):  # the others' activities seen first: only the long history is due
        pass
    store(S, [big], args.history, now - timedelta(hours=6 * args.history + 1), timedelta(hours=6), last)
    for label in ("recount", "recount_after_time_zone_change"):
        WRITE_LOCKS.snapshot(reset=True)
        began = time.perf_counter()
        while award_pending(S, limit=50):
            pass
        locks = WRITE_LOCKS.snapshot(reset=True).get("badges", {})
        out[f"{label}_seconds"] = round(time.perf_counter() - began, 2)
        out[f"{label}_write_lock_max_ms"] = locks.get("max_ms")
        out[f"{label}_transactions"] = locks.get("count")
        with S() as s, s.begin():
            recount_user(s, big)
    out["history_activities"] = args.history
    print(json.dumps(out))
    engine.dispose()


if __name__ == "__main__":
    main()
