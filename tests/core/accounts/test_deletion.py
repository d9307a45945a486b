"""Deleting an account: an athlete who touched every feature is deleted, then every table,
every Redis key and the models' folder are scanned for their id, username, e-mail and
display name; nothing remains, and the other athletes' data stays. On a database of its own
(SQLite and PostgreSQL) and the test Redis."""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import String, Text, cast, func, select
from sqlalchemy.types import JSON

from core.accounts.sessions import start_web_session
from core.accounts.signin import record_failed_sign_in
from core.accounts.tables import DeviceToken
from core.accounts.tokens import create_device_token, revoked_among
from core.accounts.users import create_user, update_profile, user_by_name
from core.activities import live_board
from core.activities.imports import record_track
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag, ModerationDecision
from core.challenges.engagement import record_safely
from core.challenges.groups import create_group, respond
from core.devices.tables import FixHint
from core.jobs.badges import assign_challenges, award_badges
from core.jobs.deletion import delete_account
from core.recommend.service import give, update_settings
from core.routes.matching import match_pending
from core.routes.tables import Route
from core.social.comments import add_comment
from core.social.follows import block, follow, set_approval
from core.social.kudos import give_kudos
from core.social.leaderboards import member, refresh_redis
from core.social.privacy import add_zone, set_hide_ends
from core.social.zone_attack import outing
from core.storage.base import Base
from core.storage.points import RoutePoint
from tests.conftest import database_of_its_own

HOME = (46.05, 14.50)


def everything(Session, redis, tag: str) -> dict:
    """An athlete ``gone`` who touched every feature, and two others around them."""
    with Session() as s, s.begin():
        gone = create_user(s, f"gone_{tag}", f"Gone Person {tag}", email=f"gone_{tag}@example.org",
                           password="gone-pass-1")
        friend = create_user(s, f"friend_{tag}", f"Friend {tag}")
        other = create_user(s, f"other_{tag}", f"Other {tag}", role="moderator")
        for a, b in ((gone, friend), (friend, gone)):
            follow(s, a, b)
        set_approval(s, other, True)
        follow(s, gone, other)  # a pending request
        block(s, gone, create_user(s, f"blocked_{tag}", f"Blocked {tag}"))
        now = time.time()
        runs = [record_track(s, gone, outing(random.Random(k), *HOME, now - 7200 - 86400 * k), visibility="public",
                             title=f"Run of Gone Person {tag}", source="demo") for k in range(3)]
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
        s.add(ModerationDecision(activity_id=runs[1].id, moderator_id=other.id, action="dismiss",
                                 note=f"fine, Gone Person {tag}", score=0.9))
        s.add_all([FixHint(activity_id=runs[2].id, seq=k, motion="running", battery=0.5) for k in range(50)])
        group = create_group(s, gone, "most_distance", [friend.id], sport="run")
        respond(s, friend.id, group.id, True)
        ids = {"gone": gone.id, "friend": friend.id, "other": other.id, "runs": [r.id for r in runs],
               "theirs": theirs.id}
    record_safely(Session, ids["gone"], sign_ins=2, visits=3)
    award_badges(Session)
    assign_challenges(Session)
    match_pending(Session)
    with Session() as s, s.begin():
        route = s.scalars(select(Route.id).limit(1)).first()
        if route is not None:
            give(s, ids["gone"], route, "save")
    with Session() as s:
        refresh_redis(s, redis)
    redis.set(f"{live_board.KEY_PREFIX}{ids['runs'][0]}", json.dumps({"user_id": ids["gone"]}))
    redis.zadd(live_board.INDEX, {str(ids["runs"][0]): time.time()})
    return ids


def rows_naming(s, user_id: int, texts: list[str]) -> dict[str, int]:
    """Per table and column: rows holding the id in a column that refers to users, or one of
    ``texts`` in a text or JSON column."""
    found = {}
    for table in Base.metadata.sorted_tables:
        for col in table.columns:
            if any(fk.column.table.name == "users" for fk in col.foreign_keys) or (
                    table.name == "users" and col.name == "id"):
                n = s.scalar(select(func.count()).select_from(table).where(col == user_id))
            elif isinstance(col.type, (String, Text, JSON)):
                as_text = cast(col, Text) if isinstance(col.type, JSON) else col
                n = sum(s.scalar(select(func.count()).select_from(table).where(as_text.contains(t))) for t in texts)
            else:
                continue
            if n:
                found[f"{table.name}.{col.name}"] = n
    return found


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_deleting_an_account_leaves_nothing_about_them(kind, tmp_path, redis_client):
    tag = uuid.uuid4().hex[:8]
    with database_of_its_own(kind, tmp_path, "deletion") as Session:
        ids = everything(Session, redis_client, tag)
        texts = [f"gone_{tag}", f"Gone Person {tag}"]
        with Session() as s:
            before = rows_naming(s, ids["gone"], texts)
            assert {"activities.user_id", "comments.user_id", "kudos.user_id", "friends.user_id",
                    "friends.friend_id", "follow_requests.user_id", "blocks.user_id", "privacy_zones.user_id",
                    "device_tokens.user_id", "web_sessions.user_id", "engagement_days.user_id",
                    "login_attempts.key", "group_challenges.creator_id", "users.username"} <= set(before), before
            token_ids = list(s.scalars(select(DeviceToken.id).where(DeviceToken.user_id == ids["gone"])))
        assert any(redis_client.zscore(k, member(ids["gone"])) is not None
                   for k in redis_client.scan_iter(match="tracker:lb:*") if redis_client.type(k) == "zset")

        done = delete_account(Session, ids["gone"], redis_client, settle_s=0.0)
        assert done["deleted"] and done["activities"] == 3 and done["points"] > 1000

        with Session() as s:
            assert rows_naming(s, ids["gone"], texts) == {}
            for table in (RoutePoint, FixHint):
                assert s.scalar(select(func.count()).select_from(table)
                                .where(table.activity_id.in_(ids["runs"]))) == 0
            assert revoked_among(s, token_ids) == set(token_ids)  # every ingest server drops them
            # The others' data stays: the friend's run, with its comment from the deleted athlete gone.
            theirs = s.get(Activity, ids["theirs"])
            assert theirs is not None and user_by_name(s, f"friend_{tag}") is not None
            assert s.scalar(select(func.count()).select_from(RoutePoint)
                            .where(RoutePoint.activity_id == ids["theirs"])) > 100
            assert s.scalar(select(func.count()).select_from(ModerationDecision)
                            .where(ModerationDecision.moderator_id == ids["other"])) == 0  # it was about them
        runs = {str(a) for a in ids["runs"]}
        for key in redis_client.scan_iter(match="*"):
            if redis_client.type(key) == "zset":
                members = {m for m, _ in redis_client.zrange(key, 0, -1, withscores=True)}
                assert member(ids["gone"]) not in members and not (key == live_board.INDEX and members & runs), key
            else:
                assert key.rsplit(":", 1)[-1] not in runs, key
                value = redis_client.get(key) if redis_client.type(key) == "string" else ""
                assert not any(t in (value or "") for t in texts), key
        # Run again (as after a failure at the last step): Redis is cleaned even with the row gone.
        redis_client.zadd("tracker:lb:all:run", {member(ids["gone"]): 5.0})
        redis_client.set(f"{live_board.KEY_PREFIX}999999", json.dumps({"user_id": ids["gone"]}))
        assert delete_account(Session, ids["gone"], redis_client, settle_s=0.0) == {"deleted": False,
                                                                                      "redis_entries": 2}


def test_the_command_line_asks_for_yes_and_then_deletes(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from core.storage.engine import make_engine, make_sessionmaker
    from core.storage.schema import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'del.db'}")
    migrate(engine)
    Session = make_sessionmaker(engine)
    with Session() as s, s.begin():
        user = create_user(s, "leaver", "Lee Ver")
        record_track(s, user, outing(random.Random(1), *HOME, datetime(2026, 11, 1, tzinfo=UTC).timestamp()),
                     source="demo")
    env = dict(os.environ, TRACKER_DATABASE_URL=str(engine.url), TRACKER_DATA_DIR=str(tmp_path / "data"))
    env.pop("TRACKER_REDIS_URL", None)
    root = Path(__file__).resolve().parents[3]

    def core(*args):
        return subprocess.run([sys.executable, "-m", "core", *args], cwd=root, env=env, capture_output=True,
                              text=True, timeout=300)

    out = core("delete-user", "leaver")
    assert out.returncode == 2 and "--yes" in out.stderr
    out = core("delete-user", "leaver", "--yes")
    assert out.returncode == 0 and json.loads(out.stdout)["deleted"] is True
    with Session() as s:
        assert user_by_name(s, "leaver") is None and s.scalar(select(func.count()).select_from(Activity)) == 0
    out = core("delete-user", "leaver", "--yes")
    assert out.returncode == 2 and "no user" in out.stderr
    engine.dispose()
