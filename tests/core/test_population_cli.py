"""The command line that fills the platform: ``import`` (files for an athlete, as an upload),
``follow`` and ``jobs run``, each run as a subprocess on a database of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.accounts.users import create_user, user_by_name
from core.activities.tables import Activity
from core.social.follows import block, followed_ids, set_approval
from core.storage.engine import make_engine, make_sessionmaker
from core.storage.schema import migrate

ROOT = Path(__file__).resolve().parents[2]
RIDES = ("goldencheetah/2018-10-03-07-45-28.fit", "goldencheetah/2018-10-03-08-05-11.fit")


@pytest.fixture
def db(tmp_path):
    """A migrated SQLite database with the athletes ann and ben: its session factory, with ``env``
    for the commands run on it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'population.db'}")
    migrate(engine)
    Session = make_sessionmaker(engine)
    with Session() as s, s.begin():
        create_user(s, "ann", "Ann")
        create_user(s, "ben", "Ben")
    env = dict(os.environ, TRACKER_DATABASE_URL=engine.url.render_as_string(hide_password=False),
               TRACKER_DATA_DIR=str(tmp_path / "data"))
    env.pop("TRACKER_REDIS_URL", None)
    Session.env = env
    yield Session
    engine.dispose()


def core(Session, *args: str) -> tuple[int, list[dict], str]:
    """Run ``python -m core ARGS`` on the database; (exit status, stdout's JSON lines, stderr)."""
    out = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=Session.env, capture_output=True,
                         text=True, timeout=300)
    assert "Traceback" not in out.stderr, out.stderr
    return out.returncode, [json.loads(line) for line in out.stdout.splitlines()], out.stderr


def test_import_stores_the_good_files_and_explains_the_bad(db, shared_tracks, tmp_path):
    garbage = tmp_path / "x.gpx"
    garbage.write_bytes(bytes(range(256)) * 4)
    missing = tmp_path / "missing.fit"
    files = [str(shared_tracks / RIDES[0]), str(garbage), str(shared_tracks / RIDES[1]), str(missing)]
    code, lines, _ = core(db, "import", *files, "--user", "ann", "--visibility", "followers")
    assert code == 1
    assert [line["file"] for line in lines] == files
    assert isinstance(lines[0]["activity_id"], int) and isinstance(lines[2]["activity_id"], int)
    assert "activity_id" not in lines[1] and lines[1]["error"].startswith("not a readable GPX file")
    assert "activity_id" not in lines[3] and lines[3]["error"].startswith("cannot read file")
    with db() as s:
        ann = user_by_name(s, "ann")
        for line in (lines[0], lines[2]):
            activity = s.get(Activity, line["activity_id"])
            assert (activity.user_id, activity.status, activity.visibility, activity.sport) == \
                (ann.id, "completed", "followers", "ride")

    first = lines[0]["activity_id"]
    code, lines, _ = core(db, "import", str(shared_tracks / RIDES[0]), "--user", "ann")
    assert (code, lines) == (1, [{"file": str(shared_tracks / RIDES[0]),
                                  "error": f"this file is already imported as activity {first}"}])


def test_import_for_an_unknown_athlete_is_a_usage_error(db, shared_tracks):
    code, lines, err = core(db, "import", str(shared_tracks / RIDES[0]), "--user", "nobody")
    assert (code, lines) == (2, []) and "no user 'nobody'" in err
    with db() as s:
        assert s.query(Activity).count() == 0


def test_follow_and_unfollow(db):
    following = {"user": "ann", "follows": "ben", "following": True, "state": "following"}
    assert core(db, "follow", "ben", "--user", "ann")[:2] == (0, [following])
    assert core(db, "follow", "ben", "--user", "ann")[:2] == (0, [following])  # idempotent
    with db() as s:
        ann, ben = user_by_name(s, "ann"), user_by_name(s, "ben")
        assert followed_ids(s, ann.id) == [ben.id] and followed_ids(s, ben.id) == []

    code, lines, err = core(db, "follow", "ann", "--user", "ann")
    assert (code, lines) == (2, []) and "cannot follow themselves" in err
    code, lines, err = core(db, "follow", "zed", "--user", "ann")
    assert (code, lines) == (2, []) and "no user 'zed'" in err
    code, lines, err = core(db, "follow", "ben", "--user", "zed")
    assert (code, lines) == (2, []) and "no user 'zed'" in err

    assert core(db, "follow", "ben", "--user", "ann", "--undo")[:2] == (0, [{"user": "ann", "follows": "ben",
                                                                             "following": False,
                                                                             "state": "not following"}])
    with db() as s:
        assert followed_ids(s, ann.id) == []

    with db() as s, s.begin():
        set_approval(s, user_by_name(s, "ben"), True)
    assert core(db, "follow", "ben", "--user", "ann")[:2] == (0, [{"user": "ann", "follows": "ben",
                                                                    "following": False, "state": "requested"}])
    with db() as s, s.begin():
        block(s, user_by_name(s, "ben"), user_by_name(s, "ann"))
    code, lines, err = core(db, "follow", "ben", "--user", "ann")
    assert (code, lines) == (2, []) and "cannot be followed" in err


def test_jobs_run_routes_forms_a_route_from_two_public_rides_and_then_has_nothing_to_do(db, shared_tracks):
    code, lines, _ = core(db, "import", *(str(shared_tracks / r) for r in RIDES), "--user", "ann",
                          "--visibility", "public")
    assert code == 0 and all("activity_id" in line for line in lines)

    code, lines, _ = core(db, "jobs", "run", "routes")
    assert code == 0 and len(lines) == 1
    assert lines[0]["job"] == "routes" and lines[0]["batches"] == 1
    assert lines[0]["done"]["new"] == 1 and lines[0]["done"]["matched"] == 1
    assert "none" not in lines[0]["done"]

    # The alias runs the routes job first, which finds nothing left to do, then trains the
    # suggestions on the one route.
    code, lines, _ = core(db, "jobs", "run", "recommendations")
    assert code == 0
    assert [line["job"] for line in lines] == ["routes", "recommendations"]
    assert (lines[0]["done"], lines[0]["batches"]) == ({}, 0)
    assert lines[1]["done"]["routes"] == 1 and lines[1]["done"]["events"] == 2


def test_jobs_run_names_are_checked(db):
    code, lines, err = core(db, "jobs", "run", "nothing")
    assert (code, lines) == (2, []) and "invalid choice" in err


def test_import_archive_imports_a_strava_export_with_its_visibility_and_explains_the_rest(db, shared_tracks,
                                                                                          tmp_path):
    """``import-archive``: a Strava bulk export (its listing with an "Activity Visibility"
    column, recordings gzipped or not) for an athlete, one JSON line per listed activity;
    each activity keeps its title and the visibility Strava gave it, unless ``--visibility``
    says otherwise. A row that cannot be imported makes the exit status 1; an unreadable
    archive or an unknown athlete, 2."""
    import csv
    import gzip
    import io
    import zipfile

    listing = io.StringIO()
    w = csv.writer(listing)
    w.writerow(["Activity ID", "Activity Date", "Activity Name", "Activity Type", "Activity Visibility", "Filename"])
    w.writerow(["1", "Oct 3, 2018, 7:45:28 AM", "Only for me", "Ride", "only_me", "activities/1.fit.gz"])
    w.writerow(["2", "Oct 3, 2018, 8:05:11 AM", "For followers", "Ride", "followers_only", "activities/2.fit"])
    w.writerow(["3", "Oct 3, 2018, 9:00:00 AM", "Lost", "Ride", "everyone", "activities/3.fit"])
    path = tmp_path / "export_123.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("activities.csv", listing.getvalue())
        zf.writestr("activities/1.fit.gz", gzip.compress((shared_tracks / RIDES[0]).read_bytes()))
        zf.writestr("activities/2.fit", (shared_tracks / RIDES[1]).read_bytes())
    code, lines, _ = core(db, "import-archive", str(path), "--user", "ann")
    assert code == 1 and [line["row"] for line in lines] == [1, 2, 3], lines
    assert "not in the archive" in lines[2]["error"]
    with db() as s:
        got = {a.title: a.visibility for a in s.query(Activity).filter(Activity.user_id == user_by_name(s, "ann").id)}
    assert got == {"Only for me": "private", "For followers": "followers"}

    code, lines, _ = core(db, "import-archive", str(path), "--user", "ben", "--visibility", "public")
    assert code == 1 and [("activity_id" in line) for line in lines] == [True, True, False]
    with db() as s:
        assert {a.visibility for a in s.query(Activity).filter(Activity.user_id == user_by_name(s, "ben").id)} == \
            {"public"}

    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 not really a zip")
    code, lines, err = core(db, "import-archive", str(broken), "--user", "ann")
    assert (code, lines) == (2, []) and err.startswith("error:")
    code, lines, err = core(db, "import-archive", str(path), "--user", "nobody")
    assert (code, lines) == (2, []) and "no user 'nobody'" in err
