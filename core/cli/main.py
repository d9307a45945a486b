"""The command line, ``python -m core COMMAND``: each command group's module adds its own
commands (tracks: stats; admin: migrate, demo, worker; accounts: create-user, device-token;
social: feed, leaderboard; privacy: privacy, gpx; anomaly: score, train, evaluate; population: import, follow;
jobs: jobs run; recommend: routes, athletes, evaluate; challenges: badges, challenges;
engagement: evaluate; tiers: tiers run, tiers status)."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import DatabaseError, NoSuchModuleError, OperationalError

from core.cli import (
    accounts,
    admin,
    anomaly,
    challenges,
    engagement,
    jobs,
    population,
    privacy,
    recommend,
    social,
    tiers,
    tracks,
)
from core.config import SettingsError

GROUPS = (tracks, admin, accounts, social, privacy, anomaly, population, jobs, recommend, challenges, engagement,
          tiers)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Activity tracker core tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except SettingsError as exc:  # a bad TRACKER_* setting: its name and why, no traceback
        print(f"python -m core: {exc}", file=sys.stderr)
        return 2
    except (NoSuchModuleError, DatabaseError) as exc:
        # The database cannot be reached or read (a server down, a file that is no database,
        # a driver not installed): one line, the driver's own first line of why. A statement
        # the database refused (IntegrityError, ProgrammingError...) is a fault: raised.
        if isinstance(exc, DatabaseError) and type(exc) not in (DatabaseError, OperationalError):
            raise
        why = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        print(f"python -m core: the database (TRACKER_DATABASE_URL) cannot be used: "
              f"{why[0][:300] if why else type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
