"""Storage tiers on the command line: ``tiers run [--older-than DAYS]`` moves activities'
points between the database and the archive now (progress on standard error, one JSON line
of what moved); ``tiers status`` prints where the points are (JSON)."""

from __future__ import annotations

import json
import sys

from core.cli.admin import open_sessions
from core.config import load_settings


def cmd_tiers(args) -> int:
    from tqdm import tqdm

    from core.storage.tiers import run, status

    settings = load_settings()
    Session = open_sessions()
    if args.action == "status":
        print(json.dumps(status(Session, settings)))
        return 0
    if args.older_than is not None and not args.older_than >= 0:
        print("error: --older-than takes a number of days, 0 or more", file=sys.stderr)
        return 2
    with tqdm(desc="tiers", unit="activity", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        out = run(Session, settings, older_than_days=args.older_than, progress=progress)
    print(json.dumps(out))
    return 1 if out["failed"] else 0


def add_commands(sub) -> None:
    p = sub.add_parser("tiers", help="storage tiers: move old activities' points to the archive, or see where they are")
    action = p.add_subparsers(dest="action", required=True)
    q = action.add_parser("run", help="archive the old activities' points and bring back those read often, now")
    q.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                   help="archive activities started (and last read) more than DAYS ago "
                        "(default TRACKER_TIER_COLD_DAYS, 180)")
    action.add_parser("status", help="activities, points and bytes in each tier (JSON)")
    p.set_defaults(func=cmd_tiers)
