"""The command line: ``python -m core stats|migrate|demo|feed|create-user|device-token``."""

from __future__ import annotations

import argparse
import sys

from core.cli.accounts import cmd_create_user, cmd_device_token
from core.cli.admin import cmd_demo, cmd_migrate, cmd_worker
from core.cli.anomaly import cmd_anomaly_evaluate, cmd_anomaly_score, cmd_anomaly_train
from core.cli.social import cmd_feed, cmd_leaderboard
from core.cli.tracks import cmd_stats


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Activity tracker core tools")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stats", help="print statistics of GPX, TCX or FIT files as JSON lines")
    p.add_argument("files", nargs="+", type=str)
    p.add_argument("--sport", choices=("run", "ride", "walk", "other"), help="override the file's sport")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("demo", help="load the demo dataset into an empty database")
    p.add_argument("--users", type=int, default=300)
    p.add_argument("--activities", type=int, default=2500)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--force", action="store_true")
    p.add_argument("--no-shared", action="store_true", help="do not use ../shared/data/tracks")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("create-user", help="create an account")
    p.add_argument("username")
    p.add_argument("--name")
    p.add_argument("--password")
    p.add_argument("--role", default="athlete", choices=("athlete", "moderator"))
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser("device-token", help="create a device token for the ingest server")
    p.add_argument("--user", required=True)
    p.add_argument("--name", default="device")
    p.set_defaults(func=cmd_device_token)

    p = sub.add_parser("worker", help="run the scheduled jobs (anomaly scoring, leaderboards every 3 minutes)")
    p.add_argument("--once", action="store_true", help="run each job once and exit")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between rounds")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("leaderboard", help="print a leaderboard")
    p.add_argument("--period", choices=("week", "month", "all"), default="week")
    p.add_argument("--sport", choices=("run", "ride"), default="run")
    p.add_argument("--scope", choices=("global", "friends"), default="global")
    p.add_argument("--user", help="whose rank and friends")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("anomaly", help="anomaly detection: score files, train the model, evaluate")
    anomaly = p.add_subparsers(dest="anomaly_command", required=True)
    q = anomaly.add_parser("score", help="score GPX, TCX or FIT files; one JSON line per file")
    q.add_argument("files", nargs="+")
    q.add_argument("--sport", choices=("run", "ride"), help="judge as this sport (default: the file's)")
    q.set_defaults(func=cmd_anomaly_score)
    q = anomaly.add_parser("train", help="retrain the population model now")
    q.set_defaults(func=cmd_anomaly_train)
    q = anomaly.add_parser("evaluate", help="print precision, recall and F1 on the labelled evaluation set")
    q.add_argument("--folds", type=int, default=5)
    q.add_argument("--json", action="store_true", help="print the table as JSON")
    q.set_defaults(func=cmd_anomaly_evaluate)

    p = sub.add_parser("feed", help="print a page of an athlete's news feed")
    p.add_argument("--user", required=True)
    p.add_argument("--cursor")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(func=cmd_feed)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
