"""Badges and challenges: ``python -m core badges --user NAME`` prints one JSON line per
badge of the catalogue: earned (with the activity and when), withdrawn (with why), or next
(the athlete's figure against the mark, and what is left). ``python -m core challenges
assign [--week YYYY-Www]`` assigns a week's challenges (with a progress bar);
``python -m core challenges show --user NAME`` prints one JSON line per challenge."""

from __future__ import annotations

import argparse
import json
import sys

from core.cli.admin import named_user, open_sessions


def cmd_badges(args) -> int:
    from core.challenges.awards import standing
    from core.challenges.badges import left

    Session = open_sessions()
    with Session() as s:
        user = named_user(s, args.user)
        if user is None:
            return 2
        st = standing(s, user)
        system = (user.settings or {}).get("units", "metric")
        for a, b in st.earned:
            print(json.dumps({"badge": b.code, "name": b.name, "status": "earned", "activity_id": a.activity_id,
                              "earned_at": a.earned_at.isoformat(), "awarded_at": a.awarded_at.isoformat()}))
        for a, b in st.withdrawn:
            print(json.dumps({"badge": b.code, "name": b.name, "status": "withdrawn",
                              "withdrawn_at": a.withdrawn_at.isoformat(), "reason": a.withdrawn_reason}))
        for b, figure in st.next:
            print(json.dumps({"badge": b.code, "name": b.name, "status": "next", "figure": round(figure, 1),
                              "mark": b.at_least, "left": left(b, figure, system)}))
    return 0


def cmd_assign(args) -> int:
    """With --week, that week for everyone who may get it; without, each athlete's own
    current week (their time zone's), as the worker does."""
    from tqdm import tqdm

    from core.challenges.assign import (
        ASSIGN_BATCH,
        assign_due,
        assign_week,
        athletes_for_week,
        canonical_week,
        end_weeks,
    )

    Session = open_sessions()
    if args.week is None:
        done = {"week": "each athlete's current week", "athletes": 0, "challenges": 0, "failed": 0}
        with tqdm(desc="challenges", unit="athlete", file=sys.stderr) as bar:
            while True:
                batch = assign_due(Session)
                if not batch:
                    break
                for key in ("athletes", "challenges", "failed"):
                    done[key] += batch.get(key, 0)
                bar.update(batch["athletes"])
                if batch["athletes"] < ASSIGN_BATCH:
                    break
    else:
        try:
            week = canonical_week(args.week)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        with Session() as s:
            total = len(athletes_for_week(s, week))
        with tqdm(total=total, desc=f"challenges {week}", unit="athlete", file=sys.stderr) as bar:
            done = assign_week(Session, week, progress=bar.update)
    done["missed"] = end_weeks(Session)
    print(json.dumps(done))
    return 1 if done.get("failed") else 0


def weeks_back(text: str) -> int:
    n = int(text)
    if not 1 <= n <= 520:
        raise argparse.ArgumentTypeError("weeks must be from 1 to 520")
    return n


def cmd_show(args) -> int:
    from core.challenges.assign import challenges_of
    from core.challenges.personal import describe

    Session = open_sessions()
    with Session() as s:
        user = named_user(s, args.user)
        if user is None:
            return 2
        system = (user.settings or {}).get("units", "metric")
        for c in challenges_of(s, user.id, weeks=args.weeks):
            print(json.dumps({"challenge": describe(c.kind, c.sport, c.target, system), "id": c.id, "week": c.week,
                              "kind": c.kind, "sport": c.sport, "target": c.target, "progress": c.progress,
                              "deadline": c.deadline.isoformat(), "status": c.status,
                              "decline_reason": c.decline_reason, "usual": c.usual, "level": c.level,
                              "completed_by": c.completed_by}))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("badges", help="an athlete's badges as JSON lines",
                       description="Print one JSON line per badge of the catalogue for an athlete: earned "
                                   "(activity, when), withdrawn (when, why) or next (figure, mark, what is left).")
    p.add_argument("--user", required=True, help="the athlete's username")
    p.set_defaults(func=cmd_badges)

    c = sub.add_parser("challenges", help="weekly personal challenges")
    cs = c.add_subparsers(dest="challenges_command", required=True)
    a = cs.add_parser("assign", help="assign a week's challenges to every athlete due for them",
                      description="Assign the challenges of an ISO week to every athlete with an activity in the eight "
                                  "weeks before it who has none yet (without --week: each athlete's current week, as "
                                  "the worker does); print one JSON line. Exit 1 if any athlete's assignment failed.")
    a.add_argument("--week", help="ISO week, e.g. 2026-W49 (default: each athlete's current week, in their time zone)")
    a.set_defaults(func=cmd_assign)
    w = cs.add_parser("show", help="an athlete's challenges as JSON lines",
                      description="Print one JSON line per challenge of the athlete's recent weeks: challenge, "
                                  "target, progress, deadline, status.")
    w.add_argument("--user", required=True, help="the athlete's username")
    w.add_argument("--weeks", type=weeks_back, default=8, help="how many weeks back, 1 to 520 (default 8)")
    w.set_defaults(func=cmd_show)
