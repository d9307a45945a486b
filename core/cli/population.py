"""Filling the platform from the command line: import recordings for an athlete in bulk,
and make one athlete follow another."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from core.activities.tables import SPORTS, VISIBILITIES
from core.cli.admin import open_sessions


def read_upload(path: str) -> bytes:
    """A file's bytes as an upload would bring them: over the upload limit, missing or
    unreadable is a TrackFileError with the reason, before anything is read."""
    from core.config import load_settings
    from core.tracks.formats.common import TrackFileError

    limit = load_settings().max_upload_bytes
    try:
        size = Path(path).stat().st_size
        if size > limit:
            raise TrackFileError(f"file is {size} bytes, over the {limit}-byte limit")
        return Path(path).read_bytes()
    except OSError as exc:  # missing, unreadable, a directory, ...
        raise TrackFileError(f"cannot read file: {exc.strerror or exc}") from None


def cmd_import(args) -> int:
    """Import files for an athlete, each as a web upload would be; one JSON line per file;
    exit 1 if any failed."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.accounts.users import user_by_name
    from core.activities.imports import import_file
    from core.activities.lifecycle import ActivityError
    from core.tracks.formats.common import TrackFileError

    Session = open_sessions()
    with Session() as s:
        user = user_by_name(s, args.user)
    if user is None:
        print(f"error: no user {args.user!r}", file=sys.stderr)
        return 2
    failed = 0
    for name in args.files:
        try:
            # Short write transactions of its own, as for an upload; the same file twice is refused.
            activity = import_file(Session, user, name, read_upload(name), sport=args.sport,
                                   visibility=args.visibility)
            line = {"file": name, "activity_id": activity.id}
        except (TrackFileError, ActivityError) as exc:
            line = {"file": name, "error": str(exc)}
        except SQLAlchemyError as exc:
            print(f"{name}: {str(exc).splitlines()[0]}", file=sys.stderr)
            line = {"file": name, "error": f"the database could not store this file ({exc.__class__.__name__}); "
                                          "nothing of it was imported"}
        except Exception as exc:  # noqa: BLE001 - one file's failure is its line; the others still import
            line = {"file": name, "error": f"could not import this file: {exc.__class__.__name__}: {exc}"}
        failed += "error" in line
        print(json.dumps(line), flush=True)
    return 1 if failed else 0


def cmd_import_archive(args) -> int:
    """Import a Strava bulk export for an athlete: one JSON line per listed activity (imported,
    skipped or an error, with the reason); exit 1 if any row failed, 2 if the archive is
    unreadable."""
    from core.accounts.users import user_by_name
    from core.activities.archive import ArchiveError, import_archive

    Session = open_sessions()
    with Session() as s:
        user = user_by_name(s, args.user)
    if user is None:
        print(f"error: no user {args.user!r}", file=sys.stderr)
        return 2
    failed = 0
    try:
        for line in import_archive(Session, user, args.archive, visibility=args.visibility):
            failed += "error" in line
            print(json.dumps(line), flush=True)
    except (ArchiveError, OSError) as exc:
        print(f"error: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}", file=sys.stderr)
        return 2
    return 1 if failed else 0


def cmd_follow(args) -> int:
    """Make ``--user`` follow (or with --undo, stop following) an athlete; one JSON line whose
    ``state`` is "following", "requested" (the athlete approves their followers) or "not following"."""
    from core.accounts.users import user_by_name
    from core.social.follows import FollowRefused, follow, unfollow

    Session = open_sessions()
    with Session() as s, s.begin():
        user, other = user_by_name(s, args.user), user_by_name(s, args.athlete)
        for wanted, found in ((args.user, user), (args.athlete, other)):
            if found is None:
                print(f"error: no user {wanted!r}", file=sys.stderr)
                return 2
        try:
            if args.undo:
                unfollow(s, user, other)
                state = "not following"
            else:
                state = follow(s, user, other)
        except FollowRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        line = {"user": user.username, "follows": other.username, "following": state == "following",
                "state": state}
    print(json.dumps(line))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("import", help="import GPX, TCX or FIT files for an athlete (one JSON line per file)")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--user", required=True, help="the athlete the activities belong to")
    p.add_argument("--visibility", choices=VISIBILITIES, help="who can see them (default: the athlete's default)")
    p.add_argument("--sport", choices=SPORTS, help="record them as this sport (default: each file's own)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("import-archive", help="import the activities of a Strava bulk export (zip) for an athlete")
    p.add_argument("archive", metavar="FILE")
    p.add_argument("--user", required=True, help="the athlete the activities belong to")
    p.add_argument("--visibility", choices=VISIBILITIES, help="who can see them (default: as in the archive, "
                                                              "else the athlete's default)")
    p.set_defaults(func=cmd_import_archive)

    p = sub.add_parser("follow", help="make an athlete follow another, or ask to when they approve followers "
                                     "(--undo: stop following or withdraw the request)")
    p.add_argument("athlete", metavar="NAME", help="the athlete to follow")
    p.add_argument("--user", required=True, help="the athlete who follows")
    p.add_argument("--undo", action="store_true", help="stop following instead")
    p.set_defaults(func=cmd_follow)
