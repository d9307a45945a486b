"""What an athlete's archive holds in the odd cases, and what comes back when it is imported:
another athlete's activity a copy was found of, heart rate and cadence, a phone's hints and
the pause and resume times, an indoor activity, a discarded one, a point no date can hold,
kudos from someone who blocked them, and the command line's odd destinations."""

from __future__ import annotations

import csv
import io
import json
import random
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from core.accounts.users import create_user
from core.activities.archive import import_archive
from core.activities.imports import record_track
from core.activities.ingest import ingest_points
from core.activities.lifecycle import change_status, create_activity
from core.activities.tables import Activity, ActivityEvent
from core.anomaly import cheats
from core.anomaly.scoring import score_pending
from core.config import load_settings
from core.devices.tables import FixHint
from core.jobs.export import build_exports, latest_export, request_export, write_export
from core.storage.points import stored_track
from core.synthetic.tracks import synthetic_track
from tests.conftest import database_of_its_own


def run_track(seed: int = 1, minutes: float = 40, speed: float = 3.0, start: float | None = None):
    return synthetic_track(random.Random(seed), "run", start or time.time() - 86400 * 3, 46.05, 14.5, minutes, speed)


@pytest.fixture
def Session(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own("sqlite", tmp_path, "scratch") as Session:
        yield Session


def _zip(Session, user_id) -> zipfile.ZipFile:
    buf = io.BytesIO()
    write_export(Session, user_id, buf)
    buf.seek(0)
    return zipfile.ZipFile(buf)


def test_flag_reasons_name_another_athletes_private_activity(Session):
    """The anomaly detector's 'copy' reason names another athlete's activity (private here) and
    their name; the archive carries it in moderation.json (flags.reasons)."""
    original = run_track(seed=12, minutes=50, start=time.time() - 86400 * 400)
    with Session() as s, s.begin():
        victim = create_user(s, "victim", "Victim Secretname")
        cheat = create_user(s, "cheat", "Cheat")
        secret = record_track(s, victim, original, visibility="private", title="my secret run", source="demo")
        secret_id = secret.id
    score_pending(Session, None, 0.5)
    with Session() as s, s.begin():
        record_track(s, s.get(type(cheat), cheat.id), cheats.copy_of(original, random.Random(5)),
                     visibility="public", source="demo")
    score_pending(Session, None, 0.5)
    with _zip(Session, cheat.id) as zf:
        moderation = zf.read("moderation.json").decode()
    assert f"activity {secret_id}" not in moderation and "Secretname" not in moderation, moderation[:600]


def test_heart_rate_and_cadence_are_in_the_archive_and_come_back(Session):
    """route_points holds hr and cad; neither the GPX nor any JSON carries them, so the data is
    not given to the athlete and an import of the archive loses it."""
    track = run_track(seed=3)
    n = len(track)
    track = replace(track, hr=np.full(n, 151.0), cad=np.full(n, 87.0))
    with Session() as s, s.begin():
        user = create_user(s, "hrrunner", "Hr")
        record_track(s, user, track, visibility="public", source="demo")
    with _zip(Session, user.id) as zf:
        gpx = next(zf.read(n).decode() for n in zf.namelist() if n.endswith(".gpx"))
        assert "151" in gpx.split("<trkpt")[1] or "heart" in json.dumps(zf.namelist()), "no heart rate in the GPX"
        data = zf.read(next(n for n in zf.namelist() if n.endswith(".gpx")))
        archive = io.BytesIO()
        zf2 = zipfile.ZipFile(archive, "w")
        for name in zf.namelist():
            zf2.writestr(name, zf.read(name))
        zf2.close()
    with Session() as s, s.begin():
        again = create_user(s, "again", "Again")
    out = list(import_archive(Session, again, archive.getvalue()))
    with Session() as s:
        a = s.get(Activity, out[0]["activity_id"])
        assert np.nanmax(stored_track(s, a).hr) == 151.0
    assert data


def test_fix_hints_and_lifecycle_events_are_in_the_archive(Session):
    """fix_hints (motion, speed, bearing, battery of their phone's fixes) and activity_events
    (start/pause/resume/stop times) are rows about the athlete, deleted with them, and in no file."""
    with Session() as s, s.begin():
        user = create_user(s, "phone", "Phone")
        a = create_activity(s, user, "run", title="phone run")
        change_status(s, a, "start", at=time.time() - 900)
        ingest_points(s, a, [{"seq": k, "t": time.time() - 900 + k, "lat": 46.05 + k * 1e-4, "lon": 14.5}
                             for k in range(60)])
        s.add_all([FixHint(activity_id=a.id, seq=k, user_id=a.user_id, motion="in_vehicle", battery=0.42) for k in range(60)])
        change_status(s, a, "pause", at=time.time() - 800)
        assert s.scalars(select(ActivityEvent).where(ActivityEvent.activity_id == a.id)).all()
    with _zip(Session, user.id) as zf:
        blob = "".join(zf.read(n).decode() for n in zf.namelist())
    assert "in_vehicle" in blob and "0.42" in blob, "fix hints missing"
    assert '"pause"' in blob, "lifecycle events missing"


@pytest.mark.parametrize("lost", ["every", "first"])
def test_points_without_a_position_are_in_the_archive_and_come_back_whole(Session, lost):
    """An indoor run (times and heart rate, no fix), or a run whose device logged 6 minutes
    before it had a fix: a GPX cannot hold those points, so a TCX holds them all and is the
    file the listing imports back; the activity comes back with the same start, length and
    heart rate, and every point is in its CSV too."""
    track = run_track(seed=4, minutes=20)
    n = len(track)
    lat, lon = track.lat.copy(), track.lon.copy()
    gone = slice(None) if lost == "every" else slice(0, 6 * 60 // 5)
    lat[gone], lon[gone] = np.nan, np.nan
    track = replace(track, lat=lat, lon=lon, hr=np.full(n, 140.0))
    with Session() as s, s.begin():
        user = create_user(s, "indoor", "Indoor")
        a = record_track(s, user, track, sport="run", title="treadmill", visibility="private", source="demo")
        s.flush()
        start, elapsed = a.start_time, a.elapsed_time_s
    buf = io.BytesIO()
    write_export(Session, user.id, buf)
    zf = zipfile.ZipFile(buf)
    points = list(csv.DictReader(io.StringIO(zf.read(f"activities/{a.id}.csv").decode())))
    assert len(points) == n and {p["heart_rate_bpm"] for p in points} == {"140"} and points[0]["lat"] == ""
    assert (f"activities/{a.id}.gpx" in zf.namelist()) == (lost == "first")  # the positions, for maps
    [row] = list(csv.DictReader(io.StringIO(zf.read("activities.csv").decode())))
    assert row["Filename"] == f"activities/{a.id}.tcx" and row["Activity Name"] == "treadmill"
    with Session() as s, s.begin():
        again = create_user(s, "again", "Again")
    out = list(import_archive(Session, again, buf.getvalue()))
    with Session() as s:
        [back] = s.scalars(select(Activity).where(Activity.user_id == again.id)).all()
        assert back.status == "completed" and back.title == "treadmill", out
        assert abs((back.start_time - start).total_seconds()) < 1e-3  # TCX times are to the millisecond
        assert back.elapsed_time_s == pytest.approx(elapsed, abs=2e-3)
        assert back.point_count == n
    # Imported again into the same account: the same recording, skipped.
    assert all("already imported" in line.get("skipped", "") for line in import_archive(Session, user, buf.getvalue())
               if "skipped" in line or "activity_id" in line)


def test_discarded_activity_is_not_resurrected_by_the_import(Session):
    """A discarded activity keeps its points; the archive lists it like any other (no status
    column) and the import makes it a completed activity."""
    with Session() as s, s.begin():
        user = create_user(s, "disc", "Disc")
        a = create_activity(s, user, "run", title="discarded by me", visibility="public")
        t0 = time.time() - 7200
        change_status(s, a, "start", at=t0)
        ingest_points(s, a, [{"seq": k, "t": t0 + k, "lat": 46.05 + k * 1e-4, "lon": 14.5} for k in range(300)])
        change_status(s, a, "discard", at=t0 + 400)
    buf = io.BytesIO()
    write_export(Session, user.id, buf)
    with Session() as s, s.begin():
        again = create_user(s, "again", "Again")
    out = list(import_archive(Session, again, buf.getvalue()))
    with Session() as s:
        restored = s.scalars(select(Activity).where(Activity.user_id == again.id)).all()
        assert [a.status for a in restored] == [], out


def test_one_point_with_an_odd_time_makes_the_whole_export_fail_for_ever(Session):
    """Ingest takes any finite t (a device sending milliseconds); to_gpx raises on it, so every
    build of this athlete's archive fails and they can never get their data."""
    with Session() as s, s.begin():
        user = create_user(s, "msrunner", "Ms")
        record_track(s, user, run_track(seed=6), visibility="public", source="demo")
        a = create_activity(s, user, "run", title="buggy watch")
        change_status(s, a, "start", at=time.time() - 600)
        ingest_points(s, a, [{"seq": 0, "t": time.time() * 1000, "lat": 46.05, "lon": 14.5},
                             {"seq": 1, "t": time.time() * 1000 + 1000, "lat": 46.0501, "lon": 14.5}])
        request_export(s, user.id)
    done = build_exports(Session, load_settings())
    with Session() as s:
        export = latest_export(s, user.id)
        assert export.status == "ready", (done, export.error)


def test_kudos_givers_the_product_never_shows_are_named_in_the_archive(Session):
    """Kudos are shown as a count only (core.social.kudos.kudos_for); the archive names every
    giver, even one who has since blocked the athlete."""
    from core.social.follows import block
    from core.social.kudos import give_kudos

    with Session() as s, s.begin():
        me = create_user(s, "kudosme", "Me")
        shy = create_user(s, "shy_admirer", "Shy")
        mine = record_track(s, me, run_track(seed=7), visibility="public", source="demo")
        give_kudos(s, shy, mine.id)
        block(s, shy, me)
    with _zip(Session, me.id) as zf:
        social = json.loads(zf.read("social.json"))
    assert "shy_admirer" not in json.dumps(social["kudos_received"]), social["kudos_received"]


def test_cli_out_empty_or_a_symlink(tmp_path):
    """--out '' ends in a traceback; --out through a symlink (e.g. /dev/stdout) replaces the
    link itself with a regular file instead of writing where it points."""
    from tests.core.accounts.athlete import one_runner

    engine, _, core = one_runner(tmp_path, "exporter")
    target = tmp_path / "target.zip"
    target.write_bytes(b"")
    (tmp_path / "link.zip").symlink_to(target)
    out = core("export", "--user", "exporter", "--out", str(tmp_path / "link.zip"))
    assert out.returncode == 0
    assert (tmp_path / "link.zip").is_symlink() and target.stat().st_size > 0
    out = core("export", "--user", "exporter", "--out", "")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    out = core("export", "--user", "exporter", "--out", "/dev/null")  # a device: written as it goes
    assert out.returncode == 0, out.stderr
    assert Path("/dev/null").exists() and not Path("/dev/null").is_file()
    engine.dispose()
