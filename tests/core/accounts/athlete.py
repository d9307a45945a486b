"""An athlete who touched every feature, and the athletes around them: for the tests of
deleting an account and of exporting everything about it."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import delete, select, text

from core.accounts.sessions import start_web_session
from core.accounts.signin import record_failed_sign_in
from core.accounts.tables import User
from core.accounts.tokens import create_device_token
from core.accounts.users import create_user, update_profile
from core.activities import live_board, originals
from core.activities.imports import record_track
from core.anomaly.tables import ActivityFlag, ModerationDecision, ScoringFailure
from core.challenges.engagement import record_safely
from core.challenges.groups import create_group, respond
from core.challenges.tables import BadgeAward
from core.config import load_settings
from core.devices.tables import FixHint
from core.jobs.badges import assign_challenges, award_badges
from core.jobs.shown import settle_shown_distances
from core.recommend.service import give, update_settings
from core.routes.matching import match_pending
from core.routes.tables import Route
from core.social.comments import add_comment
from core.social.follows import block, follow, set_approval
from core.social.kudos import give_kudos
from core.social.leaderboards import refresh_redis
from core.social.privacy_settings import add_zone, set_hide_ends
from core.social.zone_attack import outing
from core.storage.cold import open_archive
from core.tracks.formats.gpx import to_gpx

HOME = (46.05, 14.50)


def everything(Session, redis, tag: str, gone_id: int | None = None) -> dict:
    """An athlete ``gone`` who touched every feature, and two others around them. With
    ``gone_id``, ``gone`` has that id (the others the next ones): a scan for it then cannot
    mistake another athlete's small id, a count or another table's id for theirs."""
    with Session() as s, s.begin():
        seat = _next_user_id(s, gone_id, tag) if gone_id is not None else None
        gone = create_user(s, f"gone_{tag}", f"Gone Person {tag}", email=f"gone_{tag}@example.org",
                           password="gone-pass-1")
        if seat is not None:
            s.execute(delete(User).where(User.id == seat))
        assert gone_id is None or gone.id == gone_id, gone.id
        friend = create_user(s, f"friend_{tag}", f"Friend {tag}", email=f"friend_{tag}@example.org")
        other = create_user(s, f"other_{tag}", f"Other {tag}", role="moderator")
        for a, b in ((gone, friend), (friend, gone)):
            follow(s, a, b)
        set_approval(s, other, True)
        follow(s, gone, other)  # a pending request
        block(s, gone, create_user(s, f"blocked_{tag}", f"Blocked {tag}"))
        now = time.time()
        runs = [record_track(s, gone, outing(random.Random(k), *HOME, now - 7200 - 86400 * k), visibility="public",
                             title=f"Run of Gone Person {tag}", source="demo") for k in range(3)]
        # The first came from a file they uploaded, which is kept.
        upload = to_gpx(outing(random.Random(0), *HOME, now - 7200), name=f"Run of Gone Person {tag}").encode()
        packed = originals.pack(f"Run of Gone Person {tag}.gpx", upload)
        written = originals.write(open_archive(load_settings()), runs[0].id, gone.id, packed)
        originals.keep(s, runs[0].id, gone.id, packed, written)
        theirs = record_track(s, friend, outing(random.Random(9), *HOME, now - 3600), visibility="public",
                              source="demo")
        add_comment(s, gone, theirs.id, f"well run, from Gone Person {tag}")
        add_comment(s, friend, runs[0].id, "thanks")
        give_kudos(s, gone, theirs.id)
        give_kudos(s, friend, runs[0].id)
        add_zone(s, gone, *HOME, 400)
        set_hide_ends(s, gone, 200)
        update_profile(s, gone, units="imperial")
        create_device_token(s, gone, f"watch of Gone Person {tag}")
        start_web_session(s, gone)
        record_failed_sign_in(s, gone.username, "203.0.113.9")
        update_settings(s, gone.id, sport="run", usual_distance_m=8000.0)
        s.add(ActivityFlag(activity_id=runs[1].id, user_id=gone.id, sport="run", score=0.9, status="flagged",
                           reasons=["fast"], codes="", verdict={"hits": []}, features={}))
        s.add(ModerationDecision(activity_id=runs[1].id, user_id=gone.id, moderator_id=other.id, action="dismiss",
                                 note=f"fine, Gone Person {tag}", score=0.9))
        s.add(ScoringFailure(activity_id=runs[2].id, user_id=gone.id, attempts=5, retry_at=None,
                             error=f"ValueError: Gone Person {tag}", first_failed_at=runs[2].start_time,
                             failed_at=runs[2].start_time))
        s.add(BadgeAward(user_id=gone.id, code="first_run", activity_id=runs[0].id, earned_at=runs[0].start_time))
        s.add_all([FixHint(activity_id=runs[2].id, seq=k, user_id=gone.id, motion="running", battery=0.5) for k in range(50)])
        group = create_group(s, gone, "most_distance", [friend.id], sport="run")
        respond(s, friend.id, group.id, True)
        ids = {"gone": gone.id, "friend": friend.id, "other": other.id, "runs": [r.id for r in runs],
               "theirs": theirs.id, "upload": upload}
    record_safely(Session, ids["gone"], sign_ins=2, visits=3)
    award_badges(Session)
    assign_challenges(Session)
    match_pending(Session)
    with Session() as s, s.begin():
        route = s.scalars(select(Route.id).limit(1)).first()
        if route is not None:
            give(s, ids["gone"], route, "save")
    while settle_shown_distances(Session):  # what boards count of a hiding athlete's runs
        pass
    with Session() as s:
        refresh_redis(s, redis)
    redis.set(f"{live_board.KEY_PREFIX}{ids['runs'][0]}", json.dumps({"user_id": ids["gone"]}))
    redis.zadd(live_board.INDEX, {str(ids["runs"][0]): time.time()})
    return ids


def _next_user_id(s, user_id: int, tag: str) -> int | None:
    """Make ``user_id`` the next account's id; on SQLite, the id of a placeholder account
    to delete once it is taken (the next row id is one past the largest)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), :v)"), {"v": user_id - 1})
        return None
    s.add(User(id=user_id - 1, username=f"seat_{tag}", name="Seat", settings={}))
    s.flush()
    return user_id - 1


def one_runner(tmp_path: Path, name: str, title: str = "Morning run"):
    """A database file holding one athlete ``name`` with one run, and a function running
    ``python -m core`` on it (without Redis, its data folder in ``tmp_path``)."""
    from core.storage.engine import make_engine, make_sessionmaker
    from core.storage.schema import migrate

    engine = make_engine(f"sqlite:///{tmp_path / f'{name}.db'}")
    migrate(engine)
    Session = make_sessionmaker(engine)
    with Session() as s, s.begin():
        user = create_user(s, name, name.title())
        record_track(s, user, outing(random.Random(1), *HOME, datetime(2026, 11, 1, tzinfo=UTC).timestamp()),
                     title=title, source="demo")
    env = dict(os.environ, TRACKER_DATABASE_URL=str(engine.url), TRACKER_DATA_DIR=str(tmp_path / "data"))
    env.pop("TRACKER_REDIS_URL", None)
    root = Path(__file__).resolve().parents[3]

    def core(*args):
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)

    return engine, Session, core
