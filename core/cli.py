"""The command line: ``python -m core stats|migrate|demo|feed|create-user|device-token``."""

from __future__ import annotations

import argparse
import json
import math
import sys

from core.config import load_settings


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _tracks(files):
    """(name, track) per file; a file that cannot be read gets its JSON error line printed
    and comes back as (name, None)."""
    from core.fileio import TrackFileError, load_track

    for name in files:
        try:
            yield name, load_track(name)
        except TrackFileError as exc:
            print(json.dumps({"file": name, "error": str(exc)}), flush=True)
            yield name, None


def cmd_stats(args) -> int:
    """Print one JSON line of statistics per file; exit 1 if any file failed."""
    from core.cleaning import clean_track
    from core.trackstats import summarise

    failed = 0
    for name, track in _tracks(args.files):
        if track is None:
            failed += 1
            continue
        if args.sport:
            track.sport = args.sport
        summary = summarise(clean_track(track), points=len(track))
        record = {
            "file": name,
            "sport": track.sport,
            "indoor": track.indoor,
            "distance_m": round(summary.distance_m, 1),
            "moving_time_s": round(summary.moving_time_s, 1),
            "elapsed_time_s": round(summary.elapsed_time_s, 1),
            "avg_pace_s_per_km": _round(summary.avg_pace_s_per_km),
            "avg_speed_mps": _round(summary.avg_speed_mps, 2),
            "max_speed_mps": _round(summary.max_speed_mps, 2),
            "best_1km_s": _round(summary.best_pace_1km_s_per_km),
            "elevation_gain_m": _round(summary.elevation_gain_m),
            "elevation_loss_m": _round(summary.elevation_loss_m),
            "points": summary.points,
            "gps_points": summary.gps_points,
            "dropped": summary.dropped,
        }
        print(json.dumps(_json_safe(record)), flush=True)
    return 1 if failed else 0


def _round(value, digits: int = 1):
    return None if value is None else round(value, digits)


def _session():
    from core.db import make_engine, make_sessionmaker
    from core.schema import migrate

    engine = make_engine()
    migrate(engine)
    return make_sessionmaker(engine)


def cmd_migrate(_args) -> int:
    """Create or upgrade the schema."""
    _session()
    print(f"database ready: {load_settings().database_url}")
    return 0


def cmd_demo(args) -> int:
    """Load the demo dataset if the database is empty (or always with --force)."""
    from core.demo import build_demo, database_is_empty

    Session = _session()
    with Session() as s, s.begin():
        if not database_is_empty(s) and not args.force:
            print("database already has data; demo not loaded (use --force to add it anyway)")
            return 0
        shared = None if args.no_shared else load_settings().shared_tracks_dir
        report = build_demo(s, users=args.users, activities=args.activities, seed=args.seed,
                            shared_tracks=shared, progress=not args.quiet)
    print(f"demo loaded: {report.users} users, {report.activities} activities, "
          f"{report.points} points in {report.seconds:.1f} s")
    return 0


def cmd_create_user(args) -> int:
    """Create an account."""
    from core.accounts import AccountError, create_user

    Session = _session()
    try:
        with Session() as s, s.begin():
            user = create_user(s, args.username, args.name, password=args.password, role=args.role)
    except AccountError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"created {user.role} {user.username} (id {user.id})")
    return 0


def cmd_device_token(args) -> int:
    """Create a device token for a user and print it (it is shown only this once)."""
    from core.accounts import create_device_token, user_by_name

    Session = _session()
    with Session() as s, s.begin():
        user = user_by_name(s, args.user)
        if user is None:
            print(f"error: no user {args.user!r}", file=sys.stderr)
            return 2
        _, secret = create_device_token(s, user, name=args.name)
    print(secret)
    return 0


def cmd_feed(args) -> int:
    """Print a page of an athlete's news feed."""
    from core.accounts import user_by_name
    from core.feed import CursorError, feed_page

    Session = _session()
    with Session() as s:
        user = user_by_name(s, args.user)
        if user is None:
            print(f"error: no user {args.user!r}", file=sys.stderr)
            return 2
        try:
            page = feed_page(s, user.id, cursor=args.cursor, limit=args.limit)
        except CursorError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for a in page.items:
            pace = a.avg_pace_s_per_km
            if a.sport == "ride":
                pace_text = f"{a.avg_speed_mps * 3.6:.1f} km/h" if a.avg_speed_mps else "-"
            else:
                pace_text = f"{int(pace // 60)}:{int(pace % 60):02d}/km" if pace else "-"
            print(f"{a.start_time:%Y-%m-%d %H:%M}  {a.user.name:<20.20} {a.sport:<4} "
                  f"{(a.distance_m or 0) / 1000:6.2f} km  {pace_text:>9}  {a.title}")
        if page.next_cursor:
            print(f"next page: python -m core feed --user {user.username} --cursor {page.next_cursor}")
    return 0


def cmd_worker(args) -> int:
    """Run the scheduled jobs until SIGTERM."""
    import logging

    from core.worker import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(interval_s=args.interval, once=args.once)
    return 0


def cmd_leaderboard(args) -> int:
    """Print one board (from Redis when configured)."""
    from core.accounts import user_by_name
    from core.leaderboard import connect_redis, leaderboard

    Session = _session()
    with Session() as s:
        viewer = user_by_name(s, args.user) if args.user else None
        if args.user and viewer is None:
            print(f"no user {args.user!r}", file=sys.stderr)
            return 1
        board = leaderboard(s, connect_redis(load_settings().redis_url), args.period, args.sport, args.scope,
                            viewer.id if viewer else None, args.limit)
    print(f"{board.period} {board.sport} {board.scope} ({board.athletes} athletes, from {board.source})")
    for e in board.entries:
        print(f"{e.rank:>5}  {e.name:<30} {e.distance_m / 1000:9.1f} km")
    if board.me is not None and board.me.rank > len(board.entries):
        print(f"{board.me.rank:>5}  {board.me.name:<30} {board.me.distance_m / 1000:9.1f} km  (you)")
    return 0


def _database_sessions():
    """A sessionmaker for the configured database, or None when it holds nothing yet."""
    from pathlib import Path

    settings = load_settings()
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return None
    try:
        return _session()
    except Exception as exc:  # noqa: BLE001 - scoring files works without a database
        print(f"database unavailable ({exc.__class__.__name__}); scoring without it", file=sys.stderr)
        return None


def cmd_anomaly_score(args) -> int:
    """Score files on their own against the population model and the rules."""
    from core.anomaly.detector import assess
    from core.anomaly.store import ensure_model, threshold

    settings = load_settings()
    model = ensure_model(settings, _database_sessions())
    limit = threshold(settings)
    failed = 0
    for name, track in _tracks(args.files):
        if track is None:
            failed += 1
            continue
        sport = args.sport or (track.sport if track.sport in ("run", "ride") else None)
        if sport is None:
            failed += 1
            print(json.dumps({"file": name, "error": f"the file's sport is {track.sport!r}; "
                                                     "say --sport run or --sport ride"}), flush=True)
            continue
        verdict = assess(track, sport, model, threshold=limit).verdict
        print(json.dumps({"file": name, "sport": sport, "score": round(verdict.score, 4),
                          "flagged": verdict.flagged, "reasons": verdict.reasons}), flush=True)
    return 1 if failed else 0


def cmd_anomaly_train(_args) -> int:
    from core.anomaly.store import train

    model = train(load_settings(), _database_sessions(), say=print)
    print(json.dumps(model.meta["validation"]))
    return 0


def cmd_anomaly_evaluate(args) -> int:
    from core.anomaly.evaluation import print_report, run

    shared = load_settings().shared_tracks_dir
    if shared is None:
        print("the evaluation is built from the real recordings in ../shared/data/tracks "
              "(or TRACKER_SHARED_TRACKS); none found", file=sys.stderr)
        return 2
    report = run(shared, folds=args.folds,
                 progress=lambda k, n: print(f"fold {k}/{n} scored", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"table": report["table"], "limits_mps": report["limits"]}, indent=2))
    else:
        print_report(report)
    return 0


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
