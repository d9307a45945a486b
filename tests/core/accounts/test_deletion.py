"""Deleting an account: an athlete who touched every feature is deleted, then every table,
every Redis key and the models' folder are scanned for their id, username, e-mail and
display name; nothing remains, and the other athletes' data stays. On a database of its own
(SQLite and PostgreSQL) and the test Redis."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import String, Text, cast, func, select
from sqlalchemy.types import JSON

from core.accounts.tables import DeviceToken
from core.accounts.tokens import revoked_among
from core.accounts.users import user_by_name
from core.activities import live_board
from core.activities.tables import Activity
from core.anomaly.tables import ModerationDecision
from core.config import load_settings
from core.devices.tables import FixHint
from core.jobs.deletion import delete_account
from core.jobs.export import build_exports, export_folder, request_export
from core.social.leaderboards import member
from core.storage.base import Base, utcnow
from core.storage.points import RoutePoint
from tests.conftest import database_of_its_own
from tests.core.accounts.athlete import everything, one_runner


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
def test_deleting_an_account_leaves_nothing_about_them(kind, tmp_path, redis_client, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own(kind, tmp_path, "deletion") as Session:
        ids = everything(Session, redis_client, tag)
        with Session() as s, s.begin():
            request_export(s, ids["gone"])
        assert build_exports(Session, load_settings())["exports"]["built"] == 1
        with Session() as s, s.begin():
            request_export(s, ids["gone"], now=utcnow() + timedelta(hours=2))  # and another, not built yet
        archives = export_folder(load_settings())
        assert len(list(archives.iterdir())) == 1
        texts = [f"gone_{tag}", f"Gone Person {tag}"]
        with Session() as s:
            before = rows_naming(s, ids["gone"], texts)
            assert {"activities.user_id", "comments.user_id", "kudos.user_id", "friends.user_id",
                    "friends.friend_id", "follow_requests.user_id", "blocks.user_id", "privacy_zones.user_id",
                    "device_tokens.user_id", "web_sessions.user_id", "engagement_days.user_id",
                    "login_attempts.key", "group_challenges.creator_id", "users.username",
                    "data_exports.user_id", "badge_awards.user_id"} <= set(before), before
            token_ids = list(s.scalars(select(DeviceToken.id).where(DeviceToken.user_id == ids["gone"])))
        assert any(redis_client.zscore(k, member(ids["gone"])) is not None
                   for k in redis_client.scan_iter(match="tracker:lb:*") if redis_client.type(k) == "zset")

        done = delete_account(Session, ids["gone"], redis_client, settle_s=0.0)
        assert done["deleted"] and done["activities"] == 3 and done["points"] > 1000

        assert list(archives.iterdir()) == []  # their archive's file went with them
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
    engine, Session, core = one_runner(tmp_path, "leaver")
    out = core("delete-user", "leaver")
    assert out.returncode == 2 and "--yes" in out.stderr
    out = core("delete-user", "leaver", "--yes")
    assert out.returncode == 0 and json.loads(out.stdout)["deleted"] is True
    with Session() as s:
        assert user_by_name(s, "leaver") is None and s.scalar(select(func.count()).select_from(Activity)) == 0
    out = core("delete-user", "leaver", "--yes")
    assert out.returncode == 2 and "no user" in out.stderr
    engine.dispose()
