"""Deleting an account: an athlete who touched every feature (some of their activities
archived to the cold tier, the models trained with them) is deleted, then every column of
every table, every Redis key (its name and its content, whatever its type) and every file
of the data folder (the archive, the models, the exports) are scanned for their id,
username, e-mail and display name: nothing remains, and the other athletes' data stays. On
a database of its own (SQLite and PostgreSQL) and the test Redis."""

from __future__ import annotations

import gzip
import json
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import JSON, Integer, MetaData, SmallInteger, String, Text, cast, func, select

from core.accounts.tables import DeviceToken
from core.accounts.tokens import revoked_among
from core.accounts.users import user_by_name
from core.activities import live_board
from core.activities.tables import Activity
from core.anomaly import registry
from core.anomaly.tables import ModerationDecision
from core.anomaly.training import stored_row
from core.challenges.churn import examples, fit_model
from core.challenges.churn_evaluation import cutoffs_of
from core.challenges.churn_history import Daily
from core.challenges.churn_store import save_model
from core.challenges.habits import generate
from core.config import load_settings
from core.devices.tables import FixHint
from core.jobs.deletion import delete_account
from core.jobs.engagement import score_engagement
from core.jobs.export import build_exports, export_folder, request_export
from core.jobs.recommendations import train_recommendations
from core.jobs.stream import STREAM, RedisActivityStream, relay
from core.social.leaderboards import member
from core.storage import cold, tiers
from core.storage.base import Base, utcnow
from core.storage.points import RoutePoint
from core.synthetic.tracks import generated
from tests.conftest import database_of_its_own
from tests.core.accounts.athlete import everything, one_runner

# The deleted athlete's id: distinctive, so a scan of every integer column, key and file for
# it cannot mistake another athlete's small id, a count or another table's id for theirs.
GONE_ID = 1_987_654_321
REDIS_KINDS = ("string", "hash", "list", "set", "zset", "stream")


def rows_naming(engine, user_id: int, texts: list[str]) -> dict[str, int]:
    """Per table and column of the database as it is (every table, partitions too): rows
    holding ``user_id`` in an integer column, or it or one of ``texts`` in a text or JSON one."""
    tables = MetaData()
    tables.reflect(bind=engine)
    assert {t.name for t in Base.metadata.sorted_tables} <= set(tables.tables)
    needles = [*texts, str(user_id)]
    found = {}
    with engine.connect() as conn:
        for table in tables.sorted_tables:
            for col in table.columns:
                if isinstance(col.type, Integer) and not isinstance(col.type, SmallInteger):  # too small for it
                    n = conn.scalar(select(func.count()).select_from(table).where(col == user_id))
                elif isinstance(col.type, (String, Text, JSON)):
                    as_text = cast(col, Text) if isinstance(col.type, JSON) else col
                    n = sum(conn.scalar(select(func.count()).select_from(table).where(as_text.contains(t)))
                            for t in needles)
                else:
                    continue
                if n:
                    found[f"{table.name}.{col.name}"] = n
    return found


def redis_naming(redis, needles: list[str]) -> dict[str, str]:
    """Keys whose name or content (of every kind: strings, hashes, lists, sets, sorted sets,
    streams) holds one of ``needles``, with their kind."""
    found = {}
    for key in redis.scan_iter(match="*", count=1000):
        kind = redis.type(key)
        if kind == "string":
            parts = [redis.get(key)]
        elif kind == "hash":
            parts = [x for pair in redis.hgetall(key).items() for x in pair]
        elif kind == "list":
            parts = redis.lrange(key, 0, -1)
        elif kind == "set":
            parts = list(redis.smembers(key))
        elif kind == "zset":
            parts = redis.zrange(key, 0, -1)
        elif kind == "stream":
            parts = [x for _, fields in redis.xrange(key) for pair in fields.items() for x in pair]
        else:  # gone meanwhile
            continue
        if any(n in str(p) for p in (key, *parts) for n in needles):
            found[key] = kind
    return found


def files_naming(folder: Path, user_id: int, texts: list[str], activity_ids: list[int]) -> dict[str, str]:
    """Files under ``folder`` about the athlete: named after them or their activities (the
    archive's ``u<id>/a<activity>-...``), holding their id or one of ``texts`` in their bytes,
    in a Parquet file's columns or metadata, a JSON file's values or a zip's members."""
    needles = [t.encode() for t in (*texts, str(user_id))]
    found = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        why = []
        if str(user_id) in rel or any(rel.rsplit("/", 1)[-1].startswith(f"a{a}-") for a in activity_ids):
            why.append("name")
        blobs = [path.read_bytes()]
        if path.suffix == ".parquet":
            table = pq.read_table(path)
            blobs.append(repr(table.schema.metadata or {}).encode())
            for name in table.column_names:
                if name in ("user_id", "athlete", "owner_id") and user_id in table.column(name).to_pylist():
                    why.append(f"column {name}")
        elif path.suffix == ".json":
            blobs.append(json.dumps(json.loads(blobs[0])).encode())
            if _holds_int(json.loads(blobs[0]), user_id):
                why.append("json value")
        elif path.suffix == ".gz":  # a file they uploaded
            blobs.append(gzip.decompress(blobs[0]))
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                blobs += [z.read(n) for n in z.namelist()] + [n.encode() for n in z.namelist()]
                blobs += [gzip.decompress(z.read(n)) for n in z.namelist() if n.endswith(".gz")]
        if any(n in b for b in blobs for n in needles):
            why.append("content")
        if why:
            found[rel] = ", ".join(why)
    return found


def _holds_int(value, wanted: int) -> bool:
    if isinstance(value, dict):
        return any(_holds_int(v, wanted) for v in value.values())
    if isinstance(value, list):
        return any(_holds_int(v, wanted) for v in value)
    return isinstance(value, int) and not isinstance(value, bool) and value == wanted


def train_models_with(Session, settings, monkeypatch, runs: list[int]) -> None:
    """Train and store the models as the worker does, the athlete's activities among their
    inputs: the anomaly forest (on generated recordings, not the shared corpus, for time, and
    the athlete's runs' rows), the drop-off model (its scoring writes their risk and its run's
    time) and the route suggestions."""
    monkeypatch.setattr(registry, "real_recordings", lambda shared: [(f"demo {k}", t)
                                                                     for k, t in enumerate(generated(40))])
    monkeypatch.setattr(registry, "vehicle_examples", lambda shared, humans=None: [])

    def database_rows():
        with Session() as s:
            rows = [stored_row(s, s.get(Activity, a)) for a in runs]
        return {"run": [r for r in rows if r is not None]}, "their points"

    model = registry.train(settings, Session, database_rows=database_rows)
    assert model.meta["sources"]["database_activities"] == len(runs)
    pop = generate(100, 16, seed=11)  # a small model: what matters is the scoring that reads it
    save_model(fit_model(examples(Daily.of(pop), cutoffs_of(pop.shape[1]))), settings)
    assert score_engagement(Session, settings)["engagement"]["scored"] >= 1
    train_recommendations(Session, settings)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_deleting_an_account_leaves_nothing_about_them(kind, tmp_path, redis_client, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    data = tmp_path / "data"
    monkeypatch.setenv("TRACKER_DATA_DIR", str(data))
    settings = load_settings()
    with database_of_its_own(kind, tmp_path, "deletion") as Session:
        engine = Session.kw["bind"]
        ids = everything(Session, redis_client, tag, gone_id=GONE_ID)
        assert ids["gone"] == GONE_ID
        assert relay(Session, RedisActivityStream(redis_client)) >= 1  # their unscored run goes to the scorers
        train_models_with(Session, settings, monkeypatch, ids["runs"])
        archive = cold.open_archive(settings)
        for run in ids["runs"][1:]:  # two of their three runs go to the cold tier
            assert tiers.archive_activity(Session, archive, run) > 100
        with Session() as s, s.begin():
            request_export(s, ids["gone"])
        assert build_exports(Session, settings)["exports"]["built"] == 1
        with Session() as s, s.begin():
            request_export(s, ids["gone"], now=utcnow() + timedelta(hours=2))  # and another, not built yet
        archives = export_folder(settings)
        assert len(list(archives.iterdir())) == 1
        texts = [f"gone_{tag}", f"gone_{tag}@example.org", f"Gone Person {tag}"]
        needles = [*texts, str(GONE_ID)]

        # Before: every scan finds them where they are.
        before = rows_naming(engine, ids["gone"], texts)
        assert {"activities.user_id", "comments.user_id", "kudos.user_id", "friends.user_id",
                "friends.friend_id", "follow_requests.user_id", "blocks.user_id", "privacy_zones.user_id",
                "device_tokens.user_id", "web_sessions.user_id", "engagement_days.user_id",
                "engagement_risks.user_id", "login_attempts.key", "group_challenges.creator_id",
                "users.id", "users.username", "users.email", "users.name", "data_exports.user_id",
                "badge_awards.user_id", "activity_flags.user_id", "route_points.user_id", "activity_originals.user_id",
                "activity_originals.name"} <= set(before), before
        with Session() as s:
            token_ids = list(s.scalars(select(DeviceToken.id).where(DeviceToken.user_id == ids["gone"])))
        assert {k for k, kind_ in redis_naming(redis_client, needles).items() if kind_ == "zset"}, \
            "their leaderboard lines"
        files = files_naming(data, ids["gone"], texts, ids["runs"])
        assert sum(f.startswith(f"archive/u{GONE_ID}/") and f.endswith(".parquet") for f in files) == 2, files
        assert sum(f.startswith(f"archive/u{GONE_ID}/originals/") for f in files) == 1, files  # their upload
        assert any(f.startswith("exports/") for f in files), files
        models = {p.name for p in registry.model_dir(settings).iterdir()}
        assert {registry.MODEL_FILE, "churn.pkl", "churn.json", "churn.last_run"} <= models, models
        runs = {str(a) for a in ids["runs"]}
        assert {f.get("activity") for _, f in redis_client.xrange(STREAM)} & runs
        ours = set(redis_client.scan_iter(match="*", count=1000))  # the keys this test made

        done = delete_account(Session, ids["gone"], redis_client, settle_s=0.0)
        assert done["deleted"] and done["activities"] == 3 and done["points"] > 100

        # After: nothing about them in any table, key or file.
        assert rows_naming(engine, ids["gone"], texts) == {}
        assert redis_naming(redis_client, needles) == {}
        assert files_naming(data, ids["gone"], texts, ids["runs"]) == {}
        assert list(archives.iterdir()) == [] and not Path(archive.athlete_folder(ids["gone"])).exists()
        for key in ours & set(redis_client.scan_iter(match="*", count=1000)):  # nor their activities' state
            assert key.rsplit(":", 1)[-1] not in runs, key
            if key == live_board.INDEX:
                assert not set(redis_client.zrange(key, 0, -1)) & runs
            elif redis_client.type(key) == "stream":  # entries of activity ids alone, for the scorers to drop
                assert all(set(f) == {"activity"} for _, f in redis_client.xrange(key)), key
        with Session() as s:
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

        # The scans would see a leftover of any kind: one of each Redis type, a model's file.
        planted = {f"probe:{tag}:string": lambda k: redis_client.set(k, texts[2]),
                   f"probe:{tag}:hash": lambda k: redis_client.hset(k, "who", texts[1]),
                   f"probe:{tag}:list": lambda k: redis_client.rpush(k, texts[0]),
                   f"probe:{tag}:set": lambda k: redis_client.sadd(k, texts[2]),
                   f"probe:{tag}:zset": lambda k: redis_client.zadd(k, {member(ids["gone"]): 1.0}),
                   f"probe:{tag}:stream": lambda k: redis_client.xadd(k, {"user": str(ids["gone"])}),
                   f"probe:{tag}:{ids['gone']}": lambda k: redis_client.set(k, "1")}
        for key, plant in planted.items():
            plant(key)
        try:
            assert set(redis_naming(redis_client, needles)) == set(planted)
        finally:
            redis_client.delete(*planted)
        probe = registry.model_dir(settings) / "probe.json"
        probe.write_text(json.dumps({"rows": [{"athlete": ids["gone"]}]}))
        assert files_naming(data, ids["gone"], texts, ids["runs"]) == {"models/probe.json": "json value, content"}
        probe.unlink()

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
