"""Exporting everything about an athlete: an athlete who touched every feature asks for their
archive, the worker's job builds it (with progress, crash-safe, kept for a while), and it
holds every kind of record about them and no secret nor anything private of another
athlete's; imported into a new account, it restores the activities with their titles,
dates and visibility. On a database of its own (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import time
import uuid
import zipfile
from datetime import timedelta

import pytest
from sqlalchemy import select

from core.accounts.sessions import start_web_session
from core.accounts.tables import DataExport, DeviceToken, User, WebSession
from core.accounts.tokens import create_device_token
from core.accounts.users import create_user, user_by_name
from core.activities.archive import import_archive
from core.activities.imports import record_track
from core.activities.originals import unpacked
from core.activities.tables import Activity, OriginalFile
from core.config import load_settings
from core.jobs.export import (
    ExportError,
    build_exports,
    export_file,
    export_folder,
    latest_export,
    request_export,
)
from core.recommend.tables import RouteSignal
from core.social.tables import PrivacyZone
from core.social.zone_attack import outing
from core.storage.base import utcnow
from core.storage.cold import open_archive
from tests.conftest import database_of_its_own
from tests.core.accounts.athlete import HOME, everything, one_runner


def _build(Session) -> dict:
    return build_exports(Session, load_settings())


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_the_archive_holds_everything_about_them_and_no_secret(kind, tmp_path, redis_client, monkeypatch):
    tag = uuid.uuid4().hex[:8]
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own(kind, tmp_path, "export") as Session:
        ids = everything(Session, redis_client, tag)
        with Session() as s, s.begin():
            gone, friend = s.get(User, ids["gone"]), s.get(User, ids["friend"])
            _, device_secret = create_device_token(s, gone, "bike computer")
            cookie = start_web_session(s, gone)
            secret_run = record_track(s, friend, outing(random.Random(5), *HOME, time.time() - 9000),
                                      visibility="private", title=f"Secret run of Friend {tag}", source="demo")
            s.get(Activity, ids["runs"][0]).visibility = "private"
            s.get(Activity, ids["runs"][1]).visibility = "followers"
            first = request_export(s, gone.id)
            assert request_export(s, gone.id).id == first.id  # asked twice, built once
        assert _build(Session) == {"exports": {"built": 1, "failed": 0, "expired": 0}}

        with Session() as s:
            export = latest_export(s, ids["gone"])
            assert export.status == "ready" and export.done == export.total == 4 and export.size_bytes > 1000
            assert export.expires_at - export.finished_at == timedelta(hours=72)
            path = export_file(load_settings(), s, ids["gone"], export.id)
            with pytest.raises(ExportError):
                export_file(load_settings(), s, ids["friend"], export.id)  # nobody else's to read
            ratings = len(s.scalars(select(RouteSignal).where(RouteSignal.user_id == ids["gone"])).all())
            secrets = [u.password_hash for u in s.scalars(select(User)) if u.password_hash]
            secrets += list(s.scalars(select(DeviceToken.token_hash))) + list(s.scalars(select(WebSession.token_hash)))
            zone = s.scalars(select(PrivacyZone).where(PrivacyZone.user_id == ids["gone"])).one()
            secrets += [repr(zone.hidden_lat), repr(zone.hidden_lon)]
        secrets += [device_secret, cookie, f"friend_{tag}@example.org", f"Secret run of Friend {tag}"]

        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            blob = b"".join(gzip.decompress(zf.read(n)) if n.endswith(".gz") else zf.read(n) for n in names).decode()
            original = f"originals/{ids['runs'][0]}/Run of Gone Person {tag}.gpx.gz"
            assert gzip.decompress(zf.read(original)) == ids["upload"]  # the file as they uploaded it
            doc = {n: json.loads(zf.read(n)) for n in names if n.endswith(".json")}
            listing = list(csv.DictReader(io.StringIO(zf.read("activities.csv").decode())))
        assert {f"activities/{a}.{ext}" for a in ids["runs"] for ext in ("gpx", "csv")} <= names
        assert f"activities/{secret_run.id}.gpx" not in names and f"activities/{ids['theirs']}.gpx" not in names
        for secret in secrets:
            assert secret and secret not in blob, secret

        account = doc["profile.json"]["account"]
        assert account["username"] == f"gone_{tag}" and account["email"] == f"gone_{tag}@example.org"
        assert account["settings"]["units"] == "imperial" and account["settings"]["hide_ends_m"] == 200
        assert "password_hash" not in account
        assert [(z["lat"], z["lon"], z["radius_m"]) for z in doc["profile.json"]["privacy_zones"]] == [(*HOME, 400)]
        assert doc["profile.json"]["route_suggestion_settings"][0]["usual_distance_m"] == 8000.0
        social = doc["social.json"]
        assert [f["username"] for f in social["following"]] == [f"friend_{tag}"]
        assert [f["username"] for f in social["followers"]] == [f"friend_{tag}"]
        assert [r["username"] for r in social["requests_sent"]] == [f"other_{tag}"]
        assert [b["username"] for b in social["blocked"]] == [f"blocked_{tag}"]
        assert [c["text"] for c in social["comments_given"]] == [f"well run, from Gone Person {tag}"]
        assert [(c["text"], c["from"]) for c in social["comments_received"]] == [("thanks", f"friend_{tag}")]
        assert [k["to"] for k in social["kudos_given"]] == [f"friend_{tag}"]
        assert social["kudos_received"] == [{"activity_id": ids["runs"][0], "count": 1}]  # counts, as shown
        challenges = doc["challenges.json"]
        assert [b["code"] for b in challenges["badges"]] == ["first_run"] and challenges["weekly"] and len(challenges["groups_created"]) == 1
        moderation = doc["moderation.json"]
        assert [f["activity_id"] for f in moderation["flags"]] == [ids["runs"][1]]
        assert [d["note"] for d in moderation["decisions"]] == [f"fine, Gone Person {tag}"]
        assert "moderator_id" not in moderation["decisions"][0]
        assert doc["engagement.json"]["days"][0]["visits"] == 3
        assert len(doc["engagement.json"]["route_ratings"]) == ratings
        devices = doc["devices.json"]
        assert {d["name"] for d in devices["devices"]} == {f"watch of Gone Person {tag}", "bike computer"}
        assert len(devices["web_sessions"]) == 2 and len(devices["failed_sign_ins"]) == 1
        assert "token_hash" not in devices["devices"][0] and "token_hash" not in devices["web_sessions"][0]
        assert sorted(a["id"] for a in doc["activities.json"]) == sorted(ids["runs"])
        assert sorted(int(r["Activity ID"]) for r in listing) == sorted(ids["runs"])
        assert {r["Original Filename"] for r in listing} == {original, ""}
        first = next(a for a in doc["activities.json"] if a["id"] == ids["runs"][0])
        assert (first["original_name"], first["original_bytes"]) == (f"Run of Gone Person {tag}.gpx", len(ids["upload"]))

        # Imported into a new account, the activities come back with their titles, dates and visibility.
        with Session() as s, s.begin():
            create_user(s, f"again_{tag}", "Again")
        with Session() as s:
            again = user_by_name(s, f"again_{tag}")
            originals = {(a.title, a.start_time, a.sport, a.visibility) for a in s.scalars(
                select(Activity).where(Activity.user_id == ids["gone"]))}
        outcomes = list(import_archive(Session, again, path))
        assert all("activity_id" in o for o in outcomes) and len(outcomes) == 3, outcomes
        with Session() as s:
            back = list(s.scalars(select(Activity).where(Activity.user_id == again.id)))
            assert {(a.title, a.start_time, a.sport, a.visibility) for a in back} == originals
            # The file first uploaded comes back as the original, not the archive's GPX of it.
            kept = s.scalars(select(OriginalFile).where(OriginalFile.user_id == again.id)).all()
            archive = open_archive(load_settings())
            assert [(k.name, unpacked(archive, k)) for k in kept] == [(f"Run of Gone Person {tag}.gpx", ids["upload"])]
        assert all("skipped" in o for o in import_archive(Session, again, path))  # and only once

        # Kept for its time, then file and row go.
        with Session() as s, s.begin():
            s.get(DataExport, export.id).expires_at = utcnow() - timedelta(seconds=1)
        assert _build(Session) == {"exports": {"built": 0, "failed": 0, "expired": 1}}
        assert not path.exists() and list(export_folder(load_settings()).iterdir()) == []


def test_a_build_the_worker_did_not_finish_is_taken_up_again(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own("sqlite", tmp_path, "export_crash") as Session:
        with Session() as s, s.begin():
            user = create_user(s, "runner", "Runner")
            record_track(s, user, outing(random.Random(2), *HOME, time.time() - 7200), source="demo")
            export = request_export(s, user.id)
            # As a worker killed half-way leaves it: building, a half-written file beside.
            export.status, export.started_at, export.beat_at, export.done, export.total = \
                "building", utcnow(), utcnow(), 1, 2
            export.claim = "deadbeefdeadbeef"
            export_id, name = export.id, export.file_name
        folder = export_folder(load_settings())
        folder.mkdir(parents=True)
        (folder / f"{name}.deadbeefdeadbeef.part").write_bytes(b"PK\x03\x04 half")
        assert _build(Session) == {}  # a build that may still be going on is left alone
        with Session() as s, s.begin():
            s.get(DataExport, export_id).beat_at = utcnow() - timedelta(hours=1)
        assert _build(Session)["exports"]["built"] == 1
        with zipfile.ZipFile(folder / name) as zf:
            assert zf.testzip() is None and len([n for n in zf.namelist() if n.endswith(".gpx")]) == 1
        with Session() as s, s.begin():
            s.get(DataExport, export_id).expires_at = utcnow()
        assert _build(Session)["exports"]["expired"] == 1
        assert list(folder.iterdir()) == []  # the dead build's half file went with it


def test_the_account_going_while_its_archive_is_built_leaves_no_file(tmp_path, monkeypatch):
    from core.jobs import export as export_job
    from core.jobs.deletion import delete_account

    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own("sqlite", tmp_path, "export_race") as Session:
        with Session() as s, s.begin():
            user = create_user(s, "leaving", "Leaving")
            record_track(s, user, outing(random.Random(3), *HOME, time.time() - 7200), source="demo")
            request_export(s, user.id)
            user_id = user.id
        real = export_job.write_export

        def deleted_meanwhile(Session_, uid, out, progress=None):
            counts = real(Session_, uid, out, progress)
            delete_account(Session, user_id, settle_s=0.0)
            return counts

        monkeypatch.setattr(export_job, "write_export", deleted_meanwhile)
        assert _build(Session) == {}  # nothing built, nothing failed: the account is gone
        assert list(export_folder(load_settings()).iterdir()) == []


def test_the_command_line_writes_the_archive(tmp_path):
    engine, _, core = one_runner(tmp_path, "exporter", title="Morning <run>")
    out = core("export", "--user", "exporter", "--out", str(tmp_path / "mine.zip"))
    assert out.returncode == 0, out.stderr
    line = json.loads(out.stdout)
    assert line["activities"] == 1 and line["files"] == 1 and line["bytes"] == (tmp_path / "mine.zip").stat().st_size
    with zipfile.ZipFile(tmp_path / "mine.zip") as zf:
        assert json.loads(zf.read("activities.json"))[0]["title"] == "Morning <run>"
    out = core("export", "--user", "nobody", "--out", str(tmp_path / "x.zip"))
    assert out.returncode == 2 and "no user" in out.stderr and not (tmp_path / "x.zip").exists()
    out = core("export", "--user", "exporter", "--out", str(tmp_path / "no" / "such" / "dir.zip"))
    assert out.returncode == 2 and "cannot write" in out.stderr
    engine.dispose()
