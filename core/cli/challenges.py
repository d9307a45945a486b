"""Badges: ``python -m core badges --user NAME`` prints one JSON line per badge of the
catalogue: earned (with the activity and when), withdrawn (with why), or next (the
athlete's figure against the mark, and what is left)."""

from __future__ import annotations

import json
import sys

from core.cli.admin import open_sessions


def cmd_badges(args) -> int:
    from core.accounts.users import user_by_name
    from core.challenges.awards import standing
    from core.challenges.badges import left

    Session = open_sessions()
    with Session() as s:
        user = user_by_name(s, args.user)
        if user is None:
            print(f"error: no user {args.user!r}", file=sys.stderr)
            return 2
        st = standing(s, user)
        system = (user.settings or {}).get("units", "metric")
        for a, b in st.earned:
            print(json.dumps({"badge": b.code, "name": b.name, "status": "earned", "activity_id": a.activity_id,
                              "earned_at": a.earned_at.isoformat(), "awarded_at": a.awarded_at.isoformat()}))
        for a, b in st.withdrawn:
            print(json.dumps({"badge": b.code, "name": b.name, "status": "withdrawn",
                              "withdrawn_at": a.withdrawn_at.isoformat(), "reason": a.withdrawn_reason}))
        for b, figure in st.next:
            print(json.dumps({"badge": b.code, "name": b.name, "status": "next", "figure": round(figure, 1),
                              "mark": b.at_least, "left": left(b, figure, system)}))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("badges", help="an athlete's badges as JSON lines",
                       description="Print one JSON line per badge of the catalogue for an athlete: earned "
                                   "(activity, when), withdrawn (when, why) or next (figure, mark, what is left).")
    p.add_argument("--user", required=True, help="the athlete's username")
    p.set_defaults(func=cmd_badges)
