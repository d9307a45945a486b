"""Accounts: create users and device tokens, delete an account."""

from __future__ import annotations

import sys

from core.accounts.tables import DEVICE_SPORTS, ROLES
from core.cli.admin import named_user, named_user_id, open_sessions


def cmd_create_user(args) -> int:
    """Create an account."""
    from core.accounts.users import AccountError, create_user

    Session = open_sessions()
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
    from core.accounts.tokens import create_device_token

    Session = open_sessions()
    with Session() as s, s.begin():
        user = named_user(s, args.user)
        if user is None:
            return 2
        _, secret = create_device_token(s, user, name=args.name, sport=args.sport)
    print(secret)
    return 0


def cmd_delete_user(args) -> int:
    """Delete an account and everything about them (``core.accounts.deletion``); one JSON line."""
    import json

    from core.config import load_settings
    from core.jobs.deletion import delete_account
    from core.social.leaderboards import connect_redis

    if not args.yes:
        print(f"error: deleting {args.username!r} removes their activities, comments on other athletes' "
              "activities and everything else about them for good: add --yes to go ahead", file=sys.stderr)
        return 2
    Session = open_sessions()
    user_id = named_user_id(Session, args.username)
    if user_id is None:
        return 2
    print(json.dumps({"user": args.username, **delete_account(Session, user_id, connect_redis(load_settings().redis_url))}))
    return 0


class _Stream:
    """A device or a pipe as zipfile sees it: written in order, never sought back."""

    def __init__(self, f):
        self.f = f

    def write(self, data: bytes) -> int:
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def cmd_export(args) -> int:
    """Write the archive of everything about an athlete (``core.jobs.export``) to a file; one
    JSON line with what it holds."""
    import json
    import os
    from pathlib import Path

    from core.jobs.export import write_export

    Session = open_sessions()
    user_id = named_user_id(Session, args.user)
    if user_id is None:
        return 2
    if not args.out.strip():
        print("error: --out needs a file name", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()  # through a link, to where it points
    direct = out.exists() and not out.is_file()  # a device or a pipe (/dev/stdout): written as it goes
    part = out if direct else out.with_name(out.name + ".part")
    try:
        with open(part, "wb") as f:
            counts = write_export(Session, user_id, _Stream(f) if direct else f)
        if not direct:
            os.replace(part, out)
    except (OSError, ValueError) as exc:
        if not direct:
            part.unlink(missing_ok=True)
        print(f"error: cannot write {args.out}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        return 2
    size = out.stat().st_size if not direct else None
    print(json.dumps({"user": args.user, "out": str(out), "bytes": size, **counts}), file=sys.stderr if direct else sys.stdout)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("create-user", help="create an account")
    p.add_argument("username")
    p.add_argument("--name")
    p.add_argument("--password")
    p.add_argument("--role", default="athlete", choices=ROLES)
    p.set_defaults(func=cmd_create_user)

    p = sub.add_parser("device-token", help="create a device token for the ingest server")
    p.add_argument("--user", required=True)
    p.add_argument("--name", default="device")
    p.add_argument("--sport", choices=DEVICE_SPORTS, default=None,
                   help="the sport of the activities made from this device's fixes (phone apps); "
                        "left out: inferred from their speeds")
    p.set_defaults(func=cmd_device_token)

    p = sub.add_parser("delete-user", help="delete an account and everything about them, for good")
    p.add_argument("username", metavar="NAME")
    p.add_argument("--yes", action="store_true", help="yes, delete it")
    p.set_defaults(func=cmd_delete_user)

    p = sub.add_parser("export", help="write the archive of everything about an athlete (a zip)")
    p.add_argument("--user", required=True)
    p.add_argument("--out", required=True, metavar="FILE")
    p.set_defaults(func=cmd_export)
