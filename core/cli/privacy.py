"""Privacy on the command line: zones, hidden ends and maps, and what another athlete sees
of an activity (``privacy``, ``gpx``)."""

from __future__ import annotations

import json
import sys

from core.cli.admin import named_user, open_sessions
from core.config import load_settings


def _zone_line(zone) -> dict:
    return {"zone": zone.id, "lat": zone.lat, "lon": zone.lon, "radius_m": zone.radius_m}


def cmd_privacy(args) -> int:
    """Add, list or delete zones; set hidden ends or the hidden map. One JSON line each."""
    from core.routes.matching import rematch_athlete
    from core.social.privacy import PrivacyError, hidden_ends_m
    from core.social.privacy_settings import add_zone, delete_zone, set_hide_ends, set_hide_map, zones_of

    Session = open_sessions()
    with Session() as s, s.begin():
        user = named_user(s, args.user)
        if user is None:
            return 2
        try:
            if args.what == "zone" and args.action == "add":
                lines = [_zone_line(add_zone(s, user, args.lat, args.lon, args.radius))]
            elif args.what == "zone" and args.action == "delete":
                if not delete_zone(s, user, args.id):
                    print(f"error: {user.username} has no zone {args.id}", file=sys.stderr)
                    return 2
                lines = [{"deleted": args.id}]
            elif args.what == "zone":
                lines = [_zone_line(z) for z in zones_of(s, user.id)]
            elif args.what == "hide-ends":
                set_hide_ends(s, user, args.metres)
                lines = [{"user": user.username, "hide_ends_m": hidden_ends_m(user.settings)}]
            else:
                set_hide_map(s, user, args.state == "on")
                lines = [{"user": user.username, "hide_map": bool((user.settings or {}).get("hide_map"))}]
        except PrivacyError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if not (args.what == "zone" and args.action == "list"):
            rematch_athlete(s, user.id)  # the route lines they shape leave out what is now hidden
    if not (args.what == "zone" and args.action == "list"):
        from core.social.leaderboards import connect_redis, drop_lines

        drop_lines(connect_redis(load_settings().redis_url), user.id)  # until what others see is worked out
    for line in lines:
        print(json.dumps(line))
    return 0


def cmd_gpx(args) -> int:
    """The GPX an athlete may see of an activity, to standard output."""
    from core.social.visibility import viewable
    from core.storage.points import viewer_track
    from core.tracks.formats.gpx import to_gpx

    Session = open_sessions()
    with Session() as s:
        viewer = named_user(s, args.viewer)
        if viewer is None:
            return 2
        activity = viewable(s, viewer.id, args.activity_id)
        track = viewer_track(s, viewer.id, activity)
        if track is None:
            print(f"error: {viewer.username} may not see activity {args.activity_id}, or there is none",
                  file=sys.stderr)
            return 2
        sys.stdout.write(to_gpx(track, name=activity.title))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("privacy", help="privacy zones, hidden ends and hidden maps (JSON lines)")
    what = p.add_subparsers(dest="what", required=True)
    zone = what.add_parser("zone", help="add, list or delete privacy zones")
    action = zone.add_subparsers(dest="action", required=True)
    q = action.add_parser("add", help="hide a point and a radius (200 to 1,600 m) from everyone else")
    q.add_argument("--user", required=True)
    q.add_argument("--lat", type=float, required=True)
    q.add_argument("--lon", type=float, required=True)
    q.add_argument("--radius", type=float, required=True, metavar="M")
    q = action.add_parser("list", help="the athlete's zones")
    q.add_argument("--user", required=True)
    q = action.add_parser("delete", help="remove a zone")
    q.add_argument("--user", required=True)
    q.add_argument("--id", type=int, required=True)
    q = what.add_parser("hide-ends", help="hide the first and last metres (0 to 1,609) of every activity")
    q.add_argument("--user", required=True)
    q.add_argument("--metres", type=float, required=True, metavar="M")
    q = what.add_parser("hide-map", help="hide (on) or show (off) the whole map of every activity")
    q.add_argument("--user", required=True)
    q.add_argument("state", choices=("on", "off"))
    p.set_defaults(func=cmd_privacy)

    p = sub.add_parser("gpx", help="the GPX an athlete may see of an activity, to standard output")
    p.add_argument("activity_id", type=int, metavar="ACTIVITY_ID")
    p.add_argument("--as", dest="viewer", required=True, metavar="NAME", help="the athlete looking")
    p.set_defaults(func=cmd_gpx)
