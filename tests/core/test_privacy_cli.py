"""The privacy commands (``privacy zone add|list|delete``, ``privacy hide-ends``, ``privacy
hide-map``), ``gpx --as`` and ``feed --json``, each run as a subprocess on a database of its own."""

from __future__ import annotations

import json
import time

import numpy as np

from core.accounts.users import user_by_name
from core.activities.imports import record_track
from core.social.follows import follow
from core.social.privacy import METRES_PER_DEGREE
from core.tracks.track import Track
from tests.core.test_population_cli import core, db  # noqa: F401 - the fixture, for these tests too

HOME = (46.05, 14.50)


def out_and_back(start: float) -> Track:
    """From 2.5 km west of the home, past it, 4 km east of it along a straight street and
    back, a fix every 5 s at 3 m/s: it crosses any zone's hidden circle round the home
    twice, wherever that lies, and starts and ends outside it (so no draw can take its map
    away: ``core.social.privacy.map_kept``)."""
    east = np.concatenate([np.arange(-2500, 4000, 15.0), np.arange(4000, -2501, -15.0)])
    n = east.size
    lon = HOME[1] + east / (METRES_PER_DEGREE * np.cos(np.radians(HOME[0])))
    nan = np.full(n, np.nan)
    return Track(start + 5.0 * np.arange(n), np.full(n, HOME[0]), lon, np.full(n, 50.0), np.full(n, 5.0), nan, nan,
                 sport="run")


def test_zones_hidden_ends_and_maps_from_the_command_line(db):  # noqa: F811 - the imported fixture
    code, lines, _ = core(db, "privacy", "zone", "add", "--user", "ann", "--lat", "46.05", "--lon", "14.5",
                          "--radius", "400")
    assert code == 0 and lines[0]["radius_m"] == 400 and lines[0]["lat"] == 46.05
    zone = lines[0]["zone"]
    assert core(db, "privacy", "zone", "list", "--user", "ann")[:2] == (0, lines)
    code, lines, err = core(db, "privacy", "zone", "add", "--user", "ann", "--lat", "46", "--lon", "14",
                            "--radius", "100")
    assert (code, lines) == (2, []) and "from 200 m to 1600 m" in err
    code, _, err = core(db, "privacy", "zone", "delete", "--user", "ben", "--id", str(zone))
    assert code == 2 and "no zone" in err
    assert core(db, "privacy", "zone", "delete", "--user", "ann", "--id", str(zone))[:2] == (0, [{"deleted": zone}])
    # Nothing hidden yet, and asked to hide nothing: answered as it stands, not a crash.
    assert core(db, "privacy", "hide-ends", "--user", "ben", "--metres", "0")[:2] == (
        0, [{"user": "ben", "hide_ends_m": 0.0}])
    assert core(db, "privacy", "hide-map", "--user", "ben", "off")[:2] == (0, [{"user": "ben", "hide_map": False}])
    assert core(db, "privacy", "hide-ends", "--user", "ann", "--metres", "300")[:2] == (
        0, [{"user": "ann", "hide_ends_m": 300.0}])
    code, _, err = core(db, "privacy", "hide-ends", "--user", "ann", "--metres", "2000")
    assert code == 2 and "a mile" in err
    assert core(db, "privacy", "hide-map", "--user", "ann", "on")[:2] == (0, [{"user": "ann", "hide_map": True}])
    code, _, err = core(db, "privacy", "zone", "list", "--user", "nobody")
    assert code == 2 and "no user" in err


def test_gpx_and_feed_show_another_athlete_only_what_is_left(db):  # noqa: F811 - the imported fixture
    with db() as s, s.begin():
        ann, ben = user_by_name(s, "ann"), user_by_name(s, "ben")
        follow(s, ben, ann)
        run = record_track(s, ann, out_and_back(time.time() - 7200), visibility="followers", source="demo")
        run_id, full = run.id, run.distance_m
    assert core(db, "privacy", "zone", "add", "--user", "ann", "--lat", str(HOME[0]), "--lon", str(HOME[1]),
                "--radius", "400")[0] == 0

    def gpx_as(name):
        import subprocess
        import sys

        from tests.core.test_population_cli import ROOT
        out = subprocess.run([sys.executable, "-m", "core", "gpx", str(run_id), "--as", name], cwd=ROOT,
                             env=db.env, capture_output=True, text=True, timeout=300)
        return out.returncode, out.stdout, out.stderr

    code, own, _ = gpx_as("ann")
    code_ben, theirs, _ = gpx_as("ben")
    assert code == code_ben == 0 and own.count("<trkpt") > theirs.count("<trkpt") > 10
    assert f'lat="{HOME[0]:.7f}"'[:12] not in theirs  # nothing at the home itself
    with db() as s, s.begin():
        from core.social.follows import unfollow
        unfollow(s, user_by_name(s, "ben"), user_by_name(s, "ann"))
    code, out, err = gpx_as("ben")
    assert code == 2 and out == "" and "may not see" in err

    with db() as s, s.begin():
        follow(s, user_by_name(s, "ben"), user_by_name(s, "ann"))
    assert core(db, "privacy", "hide-ends", "--user", "ann", "--metres", "1000")[0] == 0
    code, lines, _ = core(db, "feed", "--user", "ben", "--json")
    item = next(i for i in lines[0]["items"] if i["activity_id"] == run_id)
    assert code == 0 and item["distance_m"] < full - 1600
    code, lines, _ = core(db, "feed", "--user", "ann", "--json")
    assert next(i for i in lines[0]["items"] if i["activity_id"] == run_id)["distance_m"] == full
    json.dumps(lines)
