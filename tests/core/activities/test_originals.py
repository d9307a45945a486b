"""The files activities were imported from, on SQLite and PostgreSQL: kept byte for byte with
the activity, under a name that cannot escape anywhere, gone with it, never left behind by an
import that failed, and carried through this tracker's own archive."""

from __future__ import annotations

import csv
import gzip
import io
import random
import time
import uuid
import zipfile

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

import core.activities.imports as imports
from core.accounts.users import create_user
from core.activities.archive import ORIGINAL_COLUMN, import_archive
from core.activities.imports import import_file
from core.activities.lifecycle import ActivityError, delete_activity
from core.activities.originals import clean_name, described, original_of, pack, unpacked
from core.activities.tables import Activity, OriginalFile
from core.social.zone_attack import outing
from core.tracks.formats.common import TrackFileError
from core.tracks.formats.gpx import to_gpx


@pytest.fixture
def Session(engine):
    return sessionmaker(engine, expire_on_commit=False)


def _athlete(Session, name: str):
    with Session() as s, s.begin():
        return create_user(s, f"{name}_{uuid.uuid4().hex[:6]}", name.title())


def _gpx(seed: int, hours_ago: float = 3) -> bytes:
    return to_gpx(outing(random.Random(seed), 46.05, 14.50, time.time() - 3600 * hours_ago),
                  name="Lunch run").encode()


def _originals(Session, user_id: int) -> int:
    with Session() as s:
        return s.scalar(select(func.count()).select_from(OriginalFile).where(OriginalFile.user_id == user_id))


@pytest.mark.parametrize("name, kind, want", [
    ("Morning Run.fit", "fit", "Morning Run.fit"),
    ("../../etc/passwd", "gpx", "passwd.gpx"),
    ("C:\\Users\\me\\ride.FIT.gz", "fit", "ride.FIT"),
    ("\x00\x1b[31m\u202eevil\u202c.tcx", "tcx", "[31mevil.tcx"),
    ("...", "gpx", "activity.gpx"),
    ("", "fit", "activity.fit"),
    ("x" * 500 + ".gpx", "gpx", "x" * 196 + ".gpx"),
])
def test_a_kept_files_name_has_no_folder_control_character_or_excess(name, kind, want):
    assert clean_name(name, kind) == want


def test_an_upload_is_kept_as_it_was_and_goes_with_its_activity(Session):
    user = _athlete(Session, "keeper")
    data = b"\n  " + _gpx(1)  # as uploaded, blank lines before the XML included
    activity = import_file(Session, user, "../Lunch <run>.gpx", data)
    with Session() as s:
        row = original_of(s, user.id, activity.id)
        assert (row.name, row.kind, row.size) == ("Lunch <run>.gpx", "gpx", len(data))
        assert unpacked(row) == data and len(row.gzipped) < len(data) / 3
        assert described(s, user.id, activity.id) == {"name": "Lunch <run>.gpx", "kind": "gpx", "bytes": len(data)}
        other = _athlete(Session, "stranger")
        assert original_of(s, other.id, activity.id) is None and described(s, other.id, activity.id) is None

    # Refused as a copy: nothing more is kept.
    with pytest.raises(ActivityError):
        import_file(Session, user, "again.gpx", data)
    assert _originals(Session, user.id) == 1

    with Session() as s, s.begin():
        delete_activity(s, s.get(Activity, activity.id))
    assert _originals(Session, user.id) == 0


def test_an_import_that_fails_midway_leaves_no_file_behind(Session, monkeypatch):
    user = _athlete(Session, "unlucky")
    data = _gpx(2)
    monkeypatch.setattr(imports, "IMPORT_CHUNK_POINTS", 50)
    written = {"n": 0}
    real = imports.insert_new_points

    def failing(s, rows):
        written["n"] += 1
        if written["n"] == 3:
            raise RuntimeError("the disk is full")
        return real(s, rows)

    monkeypatch.setattr(imports, "insert_new_points", failing)
    with pytest.raises(RuntimeError):
        import_file(Session, user, "run.gpx", data)
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Activity).where(Activity.user_id == user.id)) == 0
    assert _originals(Session, user.id) == 0


def test_what_is_no_track_file_is_not_packed():
    with pytest.raises(TrackFileError):
        pack("notes.txt", b"just words")


def _own_archive(listing: list[dict], members: dict[str, bytes]) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, ["Activity ID", "Activity Name", "Activity Type", "Filename", ORIGINAL_COLUMN])
    w.writeheader()
    w.writerows(listing)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("activities.csv", out.getvalue())
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_this_trackers_archive_brings_each_original_back_and_says_when_it_cannot(Session):
    """Its listing names each activity's file as it is now (imported) and the original (kept);
    an activity recorded on a device had none, and its GPX is not made one."""
    user = _athlete(Session, "mover")
    first, second = _gpx(3, 30), _gpx(4, 60)
    now_first = _gpx(3, 30).replace(b"Lunch run", b"Lunch run, cropped")
    data = _own_archive(
        [{"Activity ID": "7", "Activity Name": "With original", "Activity Type": "Run",
          "Filename": "activities/7.gpx", ORIGINAL_COLUMN: "originals/7/Morning run.gpx.gz"},
         {"Activity ID": "8", "Activity Name": "Original lost", "Activity Type": "Run",
          "Filename": "activities/8.gpx", ORIGINAL_COLUMN: "originals/8.fit.gz"},
         {"Activity ID": "9", "Activity Name": "Original escapes", "Activity Type": "Run",
          "Filename": "activities/9.gpx", ORIGINAL_COLUMN: "../9.gpx"},
         {"Activity ID": "10", "Activity Name": "Recorded on a device", "Activity Type": "Run",
          "Filename": "activities/10.gpx", ORIGINAL_COLUMN: ""}],
        {"activities/7.gpx": now_first, "originals/7/Morning run.gpx.gz": gzip.compress(first),
         "activities/8.gpx": second, "activities/9.gpx": _gpx(5, 90), "activities/10.gpx": _gpx(6, 120)})
    lines = {x["name"]: x for x in import_archive(Session, user, data)}
    assert all("activity_id" in x for x in lines.values()), lines
    assert "not in the archive" in lines["Original lost"]["note"]
    assert "leaves the archive" in lines["Original escapes"]["note"]
    assert "note" not in lines["With original"] and "note" not in lines["Recorded on a device"]
    with Session() as s:
        kept = original_of(s, user.id, lines["With original"]["activity_id"])
        assert (kept.name, unpacked(kept)) == ("Morning run.gpx", first)
        assert original_of(s, user.id, lines["Original lost"]["activity_id"]) is None
    assert _originals(Session, user.id) == 1
