"""Running the platform: migrate, demo, worker."""

from __future__ import annotations

from core.config import load_settings


def open_sessions():
    from core.storage.engine import make_engine, make_sessionmaker
    from core.storage.schema import migrate

    engine = make_engine()
    migrate(engine)
    return make_sessionmaker(engine)


def named_user(s, username: str):
    """The user called ``username``, or None after saying on stderr that there is none."""
    import sys

    from core.accounts.users import user_by_name

    user = user_by_name(s, username)
    if user is None:
        print(f"error: no user {username!r}", file=sys.stderr)
    return user


def named_user_id(Session, username: str) -> int | None:
    """The id of the user called ``username``, or None after saying on stderr that there is none."""
    with Session() as s:
        user = named_user(s, username)
        return None if user is None else user.id


def cmd_migrate(_args) -> int:
    """Create or upgrade the schema."""
    open_sessions()
    print(f"database ready: {load_settings().database_url}")
    return 0


def cmd_demo(args) -> int:
    """Load the demo dataset if the database is empty (or always with --force)."""
    from core.synthetic.demo import build_demo, database_is_empty

    Session = open_sessions()
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


def cmd_worker(args) -> int:
    """Run the scheduled jobs until SIGTERM."""
    import logging

    from core.jobs.worker import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(interval_s=args.interval, once=args.once)
    return 0


def add_commands(sub) -> None:
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

    p = sub.add_parser("worker", help="run the scheduled jobs (anomaly scoring, leaderboards every 3 minutes)")
    p.add_argument("--once", action="store_true", help="run each job once and exit")
    p.add_argument("--interval", type=float, default=30.0, help="seconds between rounds")
    p.set_defaults(func=cmd_worker)
