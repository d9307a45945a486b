"""Engagement: ``python -m core engagement evaluate [--athletes N] [--weeks N] [--seed S]``
generates two populations of athletes (the development habits and other habits never tuned
on), trains the drop-off model forward in time and prints, per population, each model's
ROC AUC (with a 95% interval over athletes), Brier score and top-decile precision, and the
chosen model's reliability table; then one JSON line with all the figures."""

from __future__ import annotations

import argparse
import json
import sys


def bounded(low: int, high: int):
    """An argparse type for a whole number from ``low`` to ``high``."""
    def parse(text: str) -> int:
        try:
            if not text.isascii():
                raise ValueError(text)
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return n
    return parse


# Athlete-weeks per population: the two populations' days and features take about 0.8 KB
# each (1.6 GB at 20,000 athletes over 104 weeks), so the most athletes at the default 52 weeks
# take about 4 GB.
MAX_ATHLETE_WEEKS = 5_200_000
MAX_SEED = 2**31  # numpy's seeds are unsigned; the second population's is this one plus an offset


def cmd_evaluate(args) -> int:
    from core.challenges.churn_evaluation import render, run

    if args.athletes * args.weeks > MAX_ATHLETE_WEEKS:
        print(f"python -m core engagement evaluate: --athletes times --weeks must be at most {MAX_ATHLETE_WEEKS:,} "
              f"(about 4 GB of memory), not {args.athletes * args.weeks:,}", file=sys.stderr)
        return 2
    print(f"generating {args.athletes} athletes over {args.weeks} weeks twice and training...",
          file=sys.stderr, flush=True)
    try:
        report = run(args.athletes, args.weeks, args.seed)
    except MemoryError:
        print("python -m core engagement evaluate: not enough memory for this population: ask for fewer "
              "athletes or weeks", file=sys.stderr)
        return 1
    print(render(report))
    print(json.dumps(report), flush=True)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("engagement", help="engagement: the drop-off (quiet week) model")
    engagement = p.add_subparsers(dest="engagement_command", required=True)
    e = engagement.add_parser(
        "evaluate", help="evaluate the drop-off model on generated populations",
        description="Train on the early weeks of a generated population and test on the later ones, against "
                    "the days since the last activity; the same on a population with other habits; print a "
                    "table, then one JSON line.")
    e.add_argument("--athletes", type=bounded(100, 100_000), default=2000, help="athletes per population (2000)")
    e.add_argument("--weeks", type=bounded(20, 520), default=52, help="weeks generated (52)")
    e.add_argument("--seed", type=bounded(0, MAX_SEED), default=7, help="the development population's seed (7)")
    e.set_defaults(func=cmd_evaluate)
