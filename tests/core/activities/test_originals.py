"""The files activities were imported from, on SQLite and PostgreSQL: kept byte for byte in
the archive, under a name that cannot escape anywhere, gone with the activity, never left
behind by an import that failed (or swept when its process died), and carried through this
tracker's own archive, each once and only when it is the activity's recording."""

from __future__ import annotations

import csv
import gzip
import io
import random
import time
import uuid
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

import core.activities.imports as imports
from core.accounts.users import create_user
from core.activities import originals
from core.activities.archive import ORIGINAL_COLUMN, import_archive
from core.activities.imports import import_file
from core.activities.lifecycle import ActivityError, delete_activity
from core.activities.originals import clean_name, described, original_of, pack, unpacked
from core.activities.tables import Activity, OriginalFile
from core.config import load_settings
from core.social.zone_attack import outing
from core.storage import tiers
from core.storage.cold import open_archive
from core.tracks.formats.common import TrackFileError
from core.tracks.formats.gpx import to_gpx
from tests.conftest import database_of_its_own


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def database(request, tmp_path_factory):
    """A database of this module's own: its imports commit, and must not reach other
    modules' leaderboards or counts."""
    with database_of_its_own(request.param, tmp_path_factory.mktemp("originals"), "originals") as factory:
        yield factory


@pytest.fixture
def Session(database, tmp_path, monkeypatch):
    # An archive of the test's own: both databases number their athletes from 1.
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    return database


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
    ("C:\\Users\\me\\ride.FIT.gz", "fit", "ride.fit"),
    ("\x00\x1b[31m\u202eevil\u202c.tcx", "tcx", "[31mevil.tcx"),
    ("...", "gpx", "activity.gpx"),
    ("", "fit", "activity.fit"),
    (".gpx", "gpx", "activity.gpx"),
    ("x" * 500 + ".gpx", "gpx", "x" * 196 + ".gpx"),
    ("名" * 300 + ".fit", "fit", "名" * 65 + ".fit"),  # 200 bytes of UTF-8 at most, no character split
])
def test_a_kept_files_name_has_no_folder_control_character_or_excess(name, kind, want):
    assert clean_name(name, kind) == want
    assert len(clean_name(name, kind).encode()) <= 200


def _files(user_id: int) -> list[str]:
    folder = Path(open_archive(load_settings()).athlete_folder(user_id)) / "originals"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_an_upload_is_kept_as_it_was_and_goes_with_its_activity(Session):
    user = _athlete(Session, "keeper")
    data = b"\n  " + _gpx(1)  # as uploaded, blank lines before the XML included
    before = tiers.status(Session, load_settings())["originals"]  # the database holds other tests' too
    activity = import_file(Session, user, "../Lunch <run>.gpx", data)
    archive = open_archive(load_settings())
    with Session() as s:
        row = original_of(s, user.id, activity.id)
        assert (row.name, row.kind, row.size) == ("Lunch <run>.gpx", "gpx", len(data))
        assert unpacked(archive, row) == data and row.stored_bytes < len(data) / 3
        assert described(s, user.id, activity.id) == {"name": "Lunch <run>.gpx", "kind": "gpx", "bytes": len(data)}
        other = _athlete(Session, "stranger")
        assert original_of(s, other.id, activity.id) is None and described(s, other.id, activity.id) is None
    assert _files(user.id) == [row.file]
    after = tiers.status(Session, load_settings())["originals"]
    assert after == {"files": before["files"] + 1, "bytes": before["bytes"] + row.stored_bytes}

    # Refused as a copy: nothing more is kept.
    with pytest.raises(ActivityError):
        import_file(Session, user, "again.gpx", data)
    assert _originals(Session, user.id) == 1 and len(_files(user.id)) == 1

    # A deletion rolled back keeps the file; a committed one removes it.
    with Session() as s:
        delete_activity(s, s.get(Activity, activity.id))
        s.rollback()
    assert _files(user.id) == [row.file]
    with Session() as s, s.begin():
        delete_activity(s, s.get(Activity, activity.id))
    assert _originals(Session, user.id) == 0 and _files(user.id) == []


def test_a_kept_file_that_is_gone_or_not_whole_is_said_so(Session):
    user = _athlete(Session, "careless")
    activity = import_file(Session, user, "run.gpx", _gpx(7))
    archive = open_archive(load_settings())
    with Session() as s:
        row = original_of(s, user.id, activity.id)
    path = Path(archive.athlete_folder(user.id)) / "originals" / row.file
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(originals.OriginalFileError, match="not whole"):
        unpacked(archive, row)
    path.unlink()
    with pytest.raises(originals.OriginalFileError, match="cannot be read"):
        unpacked(archive, row)


def test_the_sweep_deletes_only_files_no_activity_names_an_hour_on(Session):
    user = _athlete(Session, "sweeper")
    activity = import_file(Session, user, "run.gpx", _gpx(8))
    archive = open_archive(load_settings())
    stray = originals.write(archive, 10 ** 9, user.id, pack("lost.gpx", _gpx(9)))  # its import died
    named = _files(user.id)
    assert len(named) == 2 and stray in named
    assert originals.sweep(Session, archive) == 0  # written just now: perhaps about to be named
    assert originals.sweep(Session, archive, now=time.time() + 2 * originals.SWEEP_AFTER_S) == 1
    with Session() as s:
        assert _files(user.id) == [original_of(s, user.id, activity.id).file]


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
    assert _originals(Session, user.id) == 0 and _files(user.id) == []


def test_what_is_no_track_file_is_not_packed():
    with pytest.raises(TrackFileError):
        pack("notes.txt", b"just words")


def _own_archive(listing: list[dict], members: dict[str, bytes], columns: tuple = (ORIGINAL_COLUMN,)) -> bytes:
    out = io.StringIO()
    w = csv.DictWriter(out, ["Activity ID", "Activity Name", "Activity Type", "Filename", *columns],
                       extrasaction="ignore")
    w.writeheader()
    w.writerows(listing)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("activities.csv", out.getvalue())
        zf.writestr("activities.json", "[]")
        zf.writestr("profile.json", "{}")
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _row(number: int, name: str, original: str) -> dict:
    return {"Activity ID": str(number), "Activity Name": name, "Activity Type": "Run",
            "Filename": f"activities/{number}.gpx", ORIGINAL_COLUMN: original}


def test_this_trackers_archive_brings_each_original_back_and_says_when_it_cannot(Session, monkeypatch):
    """Its listing names each activity's file as it is now (imported) and the original (kept).
    An original is kept only when it is the activity's own recording, named by no other row,
    within the limits; an activity recorded on a device had none, and its GPX is not made one."""
    monkeypatch.setenv("TRACKER_MAX_UPLOAD_BYTES", str(2_000_000))
    user = _athlete(Session, "mover")
    first = _gpx(3, 30)
    now_first = first.replace(b"Lunch run", b"Lunch run, cropped")
    data = _own_archive(
        [_row(7, "With original", "originals/7/Morning run.gpx.gz"),
         _row(8, "Original lost", "originals/8.fit.gz"),
         _row(9, "Original escapes", "../9.gpx"),
         _row(10, "Recorded on a device", ""),
         _row(11, "Another recording's", "originals/11/other.gpx.gz"),
         _row(12, "Named twice", "originals/7/Morning run.gpx.gz"),
         _row(13, "A bomb", "originals/13/bomb.fit.gz"),
         _row(14, "Named again, spelt otherwise", "originals\\7\\Morning run.gpx.gz")],
        {"activities/7.gpx": now_first, "originals/7/Morning run.gpx.gz": gzip.compress(first),
         "activities/8.gpx": _gpx(4, 60), "activities/9.gpx": _gpx(5, 90), "activities/10.gpx": _gpx(6, 120),
         "activities/11.gpx": _gpx(11, 150), "originals/11/other.gpx.gz": gzip.compress(_gpx(12, 400)),
         "activities/12.gpx": _gpx(13, 180), "activities/13.gpx": _gpx(14, 210),
         "originals/13/bomb.fit.gz": gzip.compress(b"\0" * 3_000_000), "activities/14.gpx": _gpx(20, 240)})
    lines = {x["name"]: x for x in import_archive(Session, user, data)}
    assert all("activity_id" in x for x in lines.values()), lines
    assert "not in the archive" in lines["Original lost"]["note"]
    assert "leaves the archive" in lines["Original escapes"]["note"]
    assert "not the recording of this activity" in lines["Another recording's"]["note"]
    assert "names the same file" in lines["Named twice"]["note"]
    assert "names the same file" in lines["Named again, spelt otherwise"]["note"]
    assert "limit" in lines["A bomb"]["note"]
    assert "note" not in lines["With original"] and "note" not in lines["Recorded on a device"]
    with Session() as s:
        kept = original_of(s, user.id, lines["With original"]["activity_id"])
        assert (kept.name, unpacked(open_archive(load_settings()), kept)) == ("Morning run.gpx", first)
    assert _originals(Session, user.id) == 1 and len(_files(user.id)) == 1


def test_an_archive_of_this_tracker_from_before_originals_were_kept_makes_none(Session):
    """Its files are the GPX this tracker wrote, not what the athlete uploaded."""
    user = _athlete(Session, "early")
    data = _own_archive([_row(1, "Old", "")], {"activities/1.gpx": _gpx(15, 30)}, columns=())
    lines = list(import_archive(Session, user, data))
    assert "activity_id" in lines[0], lines
    assert _originals(Session, user.id) == 0 and _files(user.id) == []


def test_a_deletion_undone_keeps_the_file_whatever_the_session_commits_next(Session):
    user = _athlete(Session, "hesitant")
    first = import_file(Session, user, "one.gpx", _gpx(16, 30))
    second = import_file(Session, user, "two.gpx", _gpx(17, 60))
    kept = _files(user.id)
    with Session() as s:
        delete_activity(s, s.get(Activity, first.id))
        s.rollback()
        s.get(Activity, second.id).title = "Renamed"
        s.commit()  # another transaction of the same session
        nested = s.begin_nested()
        delete_activity(s, s.get(Activity, second.id))
        nested.rollback()
        s.commit()
    assert _files(user.id) == kept and _originals(Session, user.id) == 2


def test_an_archive_out_of_reach_imports_the_activity_and_says_its_file_is_not_kept(Session, tmp_path,
                                                                                    monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the archive's folder should be")
    for url in (str(blocker / "archive"), f"file://{blocker}/archive"):
        monkeypatch.setenv("TRACKER_ARCHIVE_URL", url)
        user = _athlete(Session, "unarchived")
        activity = import_file(Session, user, "run.gpx", _gpx(18))
        assert "could not be kept" in activity.summary["original_not_kept"]
        assert _originals(Session, user.id) == 0


def test_an_account_deleted_while_its_upload_is_written_keeps_none_of_its_file(Session, monkeypatch):
    from core.jobs.deletion import delete_account

    user = _athlete(Session, "leaving")
    real = originals.write

    def then_delete(archive, activity_id, user_id, original):
        file = real(archive, activity_id, user_id, original)
        delete_account(Session, user_id, settle_s=0.0)  # the athlete leaves meanwhile
        return file

    monkeypatch.setattr(originals, "write", then_delete)
    monkeypatch.setattr(imports, "IMPORT_CHUNK_POINTS", 50)
    with pytest.raises(Exception):  # noqa: B017 - whichever step finds the activity gone first
        import_file(Session, user, "run.gpx", _gpx(19))
    assert _files(user.id) == [] and _originals(Session, user.id) == 0


@pytest.mark.parametrize("name", ["Run 10:30 at 50%.gpx", "名" * 80 + ".gpx", "%3A.gpx", "\u202eevil:.gpx"])
def test_a_kept_file_comes_back_under_its_name_through_an_export_and_an_import(Session, tmp_path, name):
    from core.jobs.export_zip import write_export

    user, again = _athlete(Session, "exporter"), _athlete(Session, "importer")
    data = _gpx(21)
    activity = import_file(Session, user, name, data)
    with Session() as s:
        kept = original_of(s, user.id, activity.id).name
    out = tmp_path / "archive.zip"
    write_export(Session, user.id, out)
    lines = list(import_archive(Session, again, out.read_bytes()))
    assert "note" not in lines[0] and "activity_id" in lines[0], lines
    with Session() as s:
        back = original_of(s, again.id, lines[0]["activity_id"])
        assert back.name == kept and unpacked(open_archive(load_settings()), back) == data
