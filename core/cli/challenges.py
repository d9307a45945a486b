"""Badges and challenges: ``python -m core badges --user NAME`` prints one JSON line per
badge of the catalogue: earned (with the activity and when), withdrawn (with why), or next
(the athlete's figure against the mark, and what is left). ``python -m core challenges
assign [--week YYYY-Www]`` assigns a week's challenges (with a progress bar);
``python -m core challenges show --user NAME`` prints one JSON line per challenge;
``python -m core challenges simulate`` compares challenge policies on a simulated population."""

from __future__ import annotations

import argparse
import json
import sys

from core.cli.admin import named_user, open_sessions


def cmd_badges(args) -> int:
    from core.challenges.award_reads import standing
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
    from core.challenges.churn_store import current_model
    from core.config import load_settings

    Session = open_sessions()
    settings = load_settings()
    policy, risk_model = settings.challenge_policy, current_model(settings)
    if args.week is None:
        done = {"week": "each athlete's current week", "athletes": 0, "challenges": 0, "failed": 0}
        with tqdm(desc="challenges", unit="athlete", file=sys.stderr) as bar:
            while True:
                batch = assign_due(Session, policy=policy, risk_model=risk_model)
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
            done = assign_week(Session, week, progress=bar.update, policy=policy, risk_model=risk_model)
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


def bounded(low: int, high: int, what: str):
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a whole number") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"{what} must be from {low} to {high}")
        return n
    return parse


def cmd_simulate(args) -> int:
    """Print the default world, or run the policies on a world and print one JSON object per
    policy (and, for all of them, a table on standard error)."""
    from core.challenges.simulate import DEFAULT_WORLD, POLICIES, load_world, run

    if args.print_world:
        print(json.dumps(DEFAULT_WORLD, indent=2))
        return 0
    try:
        text = None
        if args.world is not None:
            with open(args.world, encoding="utf-8") as f:
                text = f.read(1_000_001)
        if text is not None and len(text) > 1_000_000:
            raise ValueError("world file is over 1,000,000 characters")
        world = load_world(text)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read world file: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    policies = POLICIES if args.policy == "all" else (args.policy,)
    results = run(world, policies, weeks=args.weeks, athletes=args.athletes, seed=args.seed)
    for r in results:
        print(json.dumps(r))
    if len(results) > 1:
        fixed = max(next(r["mean_active_share"] for r in results if r["policy"] == "fixed"), 1e-9)
        print(f"world {world['name']}, {args.athletes} athletes, {args.weeks} weeks, seed {args.seed}",
              file=sys.stderr)
        print(f"{'policy':9} {'active':>7} {'vs fixed':>9} {'completed':>10} {'regret':>7}  regret per week by quarter",
              file=sys.stderr)
        for r in results:
            q = " ".join("-" if v is None else f"{v:.3f}" for v in r["regret_growth"]["per_week_by_quarter"])
            print(f"{r['policy']:9} {r['mean_active_share']:7.3f} {r['mean_active_share'] / fixed - 1:+9.1%} "
                  f"{r['completion_rate']:10.3f} {r['cumulative_regret'][-1]:7.2f}  {q}", file=sys.stderr)
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
    from core.challenges.simulate import MAX_ATHLETES, MAX_WEEKS, POLICIES

    m = cs.add_parser("simulate", help="compare challenge policies on a simulated population",
                      description="Run a simulated population (hidden ability and motivation; see "
                                  "docs/challenges.md) under a challenge policy and print one JSON object per "
                                  "policy: completion_rate, weekly_active_share and cumulative_regret (per week), "
                                  "against the best fixed difficulty per athlete.")
    m.add_argument("--policy", choices=(*POLICIES, "all"), default="all",
                   help="adaptive (contextual bandit), fixed (one session more than usual), random, none, or all "
                        "of them on the same draws (default)")
    m.add_argument("--weeks", type=bounded(1, MAX_WEEKS, "weeks"), default=26, help="weeks to simulate (default 26)")
    m.add_argument("--athletes", type=bounded(1, MAX_ATHLETES, "athletes"), default=2000,
                   help="simulated athletes (default 2000)")
    m.add_argument("--seed", type=bounded(0, 2**32 - 1, "seed"), default=0, help="random seed (default 0)")
    m.add_argument("--world", metavar="FILE", help="a JSON world file (default: the built-in world)")
    m.add_argument("--print-world", action="store_true", help="print the default world as JSON and exit")
    m.set_defaults(func=cmd_simulate)
