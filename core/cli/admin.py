"""Running the platform: migrate, demo, worker."""

from __future__ import annotations

from core.config import load_settings


def _session():
    from core.storage.engine import make_engine, make_sessionmaker
    from core.storage.schema import migrate

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
    from core.synthetic.demo import build_demo, database_is_empty

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


def cmd_worker(args) -> int:
    """Run the scheduled jobs until SIGTERM."""
    import logging

    from core.jobs.worker import run

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run(interval_s=args.interval, once=args.once)
    return 0
