"""The news feed and leaderboards."""

from __future__ import annotations

import json
import sys

from core import units
from core.activities.tables import SPORTS
from core.cli.admin import named_user, open_sessions
from core.config import load_settings
from core.social.leaderboards import PERIODS, SCOPES


def cmd_feed(args) -> int:
    """Print a page of an athlete's news feed (with --json, as the device protocol's feed
    answer: the figures that athlete is shown, and the badges)."""
    from core.challenges.feed import feed_answer
    from core.social.feed import CursorError, feed_page
    from core.social.shown import shown_figures

    Session = open_sessions()
    with Session() as s:
        user = named_user(s, args.user)
        if user is None:
            return 2
        try:
            if args.json:
                print(json.dumps(feed_answer(s, user.id, args.cursor, args.limit)))
                return 0
            page = feed_page(s, user.id, cursor=args.cursor, limit=args.limit)
        except CursorError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        figures = shown_figures(s, user.id, page.items)
        for a in page.items:
            shown = figures.get(a.id) or {"start_time": a.start_time, "distance_m": a.distance_m,
                                          "avg_speed_mps": a.avg_speed_mps}
            print(f"{shown['start_time']:%Y-%m-%d %H:%M}  {a.user.name:<20.20} {a.sport:<4} "
                  f"{units.distance(shown['distance_m'] or 0):>9}  "
                  f"{units.pace_or_speed(a.sport, shown['avg_speed_mps']):>10}  {a.title}")
        if page.next_cursor:
            print(f"next page: python -m core feed --user {user.username} --cursor {page.next_cursor}")
    return 0


def cmd_leaderboard(args) -> int:
    """Print one board (from Redis when configured)."""
    from core.accounts.users import user_by_name
    from core.social.leaderboards import connect_redis, leaderboard

    Session = open_sessions()
    with Session() as s:
        viewer = user_by_name(s, args.user) if args.user else None
        if args.user and viewer is None:
            print(f"no user {args.user!r}", file=sys.stderr)
            return 1
        board = leaderboard(s, connect_redis(load_settings().redis_url), args.period, args.sport, args.scope,
                            viewer.id if viewer else None, args.limit)
    print(f"{board.period} {board.sport} {board.scope} ({board.athletes} athletes, from {board.source})")
    for e in board.entries:
        print(f"{e.rank:>5}  {e.name:<30} {units.distance(e.distance_m, digits=1):>12}")
    if board.me is not None and board.me.rank > len(board.entries):
        print(f"{board.me.rank:>5}  {board.me.name:<30} {units.distance(board.me.distance_m, digits=1):>12}  (you)")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("leaderboard", help="print a leaderboard")
    p.add_argument("--period", choices=PERIODS, default="week")
    p.add_argument("--sport", choices=SPORTS, default="run")
    p.add_argument("--scope", choices=SCOPES, default="global")
    p.add_argument("--user", help="whose rank and friends")
    p.add_argument("--limit", type=int, default=10)
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("feed", help="print a page of an athlete's news feed")
    p.add_argument("--user", required=True)
    p.add_argument("--cursor")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="print the device protocol's feed answer as JSON")
    p.set_defaults(func=cmd_feed)
