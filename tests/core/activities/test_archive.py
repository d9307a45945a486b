"""Importing a Strava bulk export, on SQLite and PostgreSQL: a zip made like Strava's (an
``activities.csv`` with repeated and unknown columns, recordings gzipped or not, other
folders beside them) holding real recordings and hostile members; each row's outcome, the
titles and visibility kept, a second import adding nothing."""

from __future__ import annotations

import csv
import gzip
import io
import uuid
import zipfile

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from core.accounts.users import create_user
from core.activities.archive import ArchiveError, import_archive, rows_of
from core.activities.originals import unpacked
from core.activities.tables import Activity, OriginalFile
from core.config import load_settings
from core.storage.cold import open_archive
from tests.conftest import SHARED_TRACKS

RUN_FIT = "goldencheetah/10kUNLP2014-Garmin15.fit"
RIDE_FIT = "goldencheetah/2018-10-03-07-45-28.fit"
RUN_GPX = "gpxpy/korita-zbevnica.gpx"
RUN_TCX = "goldencheetah/activity_790564264.tcx"

HEADER = ["Activity ID", "Activity Date", "Activity Name", "Activity Type", "Activity Description",
          "Elapsed Time", "Distance", "Max Heart Rate", "Relative Effort", "Commute", "Activity Private Note",
          "Activity Gear", "Filename", "Athlete Weight", "Bike Weight", "Elapsed Time", "Moving Time", "Distance",
          "Max Speed", "Some Column Added Next Year"]


def archive(rows: list[tuple[str, str, str]], members: dict[str, bytes]) -> bytes:
    """A zip like Strava's: ``rows`` are (name, type, filename)."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(HEADER)
    for k, (name, kind, filename) in enumerate(rows):
        cells = dict.fromkeys(HEADER, "")
        cells.update({"Activity ID": str(1000 + k), "Activity Date": "Jul 1, 2025, 6:30:00 AM",
                      "Activity Name": name, "Activity Type": kind, "Filename": filename})
        w.writerow([cells[h] for h in HEADER[:15]] + ["1800", "1700", "10000.5", "5.1", "x"])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("activities.csv", out.getvalue())
        zf.writestr("profile.csv", "Athlete ID,Email\n1,a@example.org\n")
        zf.writestr("media/photo.jpg", b"\xff\xd8\xff")
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def session_factory(engine):
    return sessionmaker(engine, expire_on_commit=False)


def recording(path: str) -> bytes:
    return (SHARED_TRACKS / path).read_bytes()


@pytest.fixture
def strava(shared_tracks):
    bomb = gzip.compress(b"\0" * (80 * 1024 * 1024))  # 80 MB of zeros, over the 64 MB limit once decompressed
    tcx = recording(RUN_TCX)
    rows = [
        ('Morning Run, "easy"', "Run", "activities/1.fit.gz"),
        ("Commute ride", "Ride", "activities/2.fit"),
        ("Hills <b>repeat</b>", "Run", "activities/3.gpx.gz"),
        ("Spaced TCX", "Run", "activities/4.tcx"),
        ("Lake swim", "Swim", "activities/5.fit"),
        ("E-bike to work", "E-Bike Ride", "activities/6.fit"),
        ("Manual treadmill", "Run", ""),
        ("Escape", "Run", "../../etc/passwd"),
        ("Bomb", "Run", "activities/8.gpx.gz"),
        ("Broken gzip", "Run", "activities/9.fit.gz"),
        ("Missing", "Ride", "activities/10.fit"),
        ("Not a recording", "Run", "activities/11.gpx"),
    ]
    members = {"activities/1.fit.gz": gzip.compress(recording(RUN_FIT)),
               "activities/2.fit": recording(RIDE_FIT),
               "activities/3.gpx.gz": gzip.compress(recording(RUN_GPX)),
               "activities/4.tcx": b"   \n" + tcx,
               "activities/5.fit": recording(RUN_FIT),
               "activities/6.fit": recording(RIDE_FIT),
               "activities/8.gpx.gz": bomb,
               "activities/9.fit.gz": gzip.compress(recording(RIDE_FIT))[:200],
               "activities/11.gpx": b"<html>not a track</html>"}
    return archive(rows, members)


def test_a_strava_archive_imports_its_runs_and_rides_and_explains_every_other_row(session_factory, strava):
    Session = session_factory
    with Session() as s, s.begin():
        user = create_user(s, f"mover_{uuid.uuid4().hex[:6]}", "Mover")
    lines = list(import_archive(Session, user, strava))
    by_name = {x["name"]: x for x in lines}
    assert [x["row"] for x in lines] == list(range(1, 13))
    imported = {n for n, x in by_name.items() if "activity_id" in x}
    assert imported == {'Morning Run, "easy"', "Commute ride", "Hills <b>repeat</b>", "Spaced TCX"}, lines
    assert "not a sport" in by_name["Lake swim"]["skipped"]
    assert "motor" in by_name["E-bike to work"]["skipped"]
    assert "manual entry" in by_name["Manual treadmill"]["skipped"]
    assert "leaves the archive" in by_name["Escape"]["error"]
    assert "limit" in by_name["Bomb"]["error"]
    assert "gzip" in by_name["Broken gzip"]["error"] or "corrupt" in by_name["Broken gzip"]["error"]
    assert "not in the archive" in by_name["Missing"]["error"]
    assert "error" in by_name["Not a recording"]
    with Session() as s:
        got = {a.title: a for a in s.scalars(select(Activity).where(Activity.user_id == user.id))}
        assert set(got) == imported
        assert got["Commute ride"].sport == "ride" and got['Morning Run, "easy"'].sport == "run"
        assert got["Hills <b>repeat</b>"].distance_m > 1000 and got["Spaced TCX"].point_count > 10
        assert all(a.status == "completed" and a.visibility == user.default_visibility for a in got.values())
        # The date is the recording's, not the listing's made-up one.
        assert got["Commute ride"].start_time.year == 2018
        # Each file is kept as it was (gzip undone), for the athlete's export; none of a row that failed.
        kept = {got[title].id: (name, data) for title, name, data in (
            ('Morning Run, "easy"', "1.fit", recording(RUN_FIT)), ("Commute ride", "2.fit", recording(RIDE_FIT)),
            ("Hills <b>repeat</b>", "3.gpx", recording(RUN_GPX)), ("Spaced TCX", "4.tcx", b"   \n" + recording(RUN_TCX)))}
        rows = s.scalars(select(OriginalFile).where(OriginalFile.user_id == user.id)).all()
        archive = open_archive(load_settings())
        assert {r.activity_id: (r.name, unpacked(archive, r)) for r in rows} == kept

    again = list(import_archive(Session, user, strava, visibility="private"))
    assert not any("activity_id" in x for x in again)
    assert all("already imported" in x["skipped"] for x in again if x["name"] in imported)
    with Session() as s:
        assert s.scalar(select(func.count()).select_from(Activity).where(Activity.user_id == user.id)) == 4


def test_the_same_activity_gzipped_and_not_is_imported_once(session_factory, shared_tracks):
    Session = session_factory
    with Session() as s, s.begin():
        user = create_user(s, f"twice_{uuid.uuid4().hex[:6]}", "Twice")
    data = archive([("One", "Ride", "activities/a.fit"), ("One again", "Ride", "activities/b.fit.gz")],
                   {"activities/a.fit": recording(RIDE_FIT), "activities/b.fit.gz": gzip.compress(recording(RIDE_FIT))})
    lines = list(import_archive(Session, user, data, visibility="public"))
    assert "activity_id" in lines[0] and "already imported" in lines[1]["skipped"]


def test_what_is_not_a_strava_archive_is_refused_whole(session_factory):
    Session = session_factory
    with Session() as s, s.begin():
        user = create_user(s, f"notzip_{uuid.uuid4().hex[:6]}", "Not Zip")
    for data, why in ((b"not a zip", "not a zip"),
                      (_zip({"other.csv": b"a,b\n"}), "no activities.csv"),
                      (_zip({"activities.csv": b"Name,Type\nx,Run\n"}), "not a Strava export")):
        with pytest.raises(ArchiveError, match=why):
            list(import_archive(Session, user, data))


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_the_listing_is_read_by_column_name_taking_the_first_of_repeated_ones():
    text = ("\ufeffActivity Type,Distance,Activity Name,Filename,Distance,Activity Visibility\n"
            'Run,5.2,"A, ""quoted"" name",activities/1.gpx,5200,followers_only\n'
            "Ride,30,Plain,,30000,\n").encode()
    rows = list(rows_of(text))
    assert [(r.name, r.kind, r.filename, r.visibility) for r in rows] == [
        ('A, "quoted" name', "Run", "activities/1.gpx", "followers"), ("Plain", "Ride", "", None)]


def test_hostile_listings_and_members_are_explained_not_raised(session_factory, shared_tracks):
    import lzma  # noqa: F401 - the module zipfile needs for ZIP_LZMA

    Session = session_factory
    with Session() as s, s.begin():
        user = create_user(s, f"hostile_{uuid.uuid4().hex[:6]}", "Hostile")
    # A description far over csv's default field limit, and one unclosed quote.
    long = _zip({"activities.csv": b"Activity Name,Activity Type,Filename,Activity Description\nx,Run,,"
                 + b"d" * 300_000 + b"\n"})
    assert "manual entry" in list(import_archive(Session, user, long))[0]["skipped"]
    # An LZMA member that is corrupt, a route without times, a date from a device's unset clock.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("activities.csv", "Activity Name,Activity Type,Filename\nlz,Run,activities/a.gpx\n"
                                      "route,Run,activities/b.gpx\nold,Run,activities/c.gpx\n")
        zf.writestr(zipfile.ZipInfo("activities/a.gpx"), b"x" * 5000, compress_type=zipfile.ZIP_LZMA)
        zf.writestr("activities/b.gpx", '<?xml version="1.0"?><gpx version="1.1" creator="t" '
                    'xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
                    '<trkpt lat="46.0" lon="14.0"/><trkpt lat="46.001" lon="14.0"/></trkseg></trk></gpx>')
        zf.writestr("activities/c.gpx", '<?xml version="1.0"?><gpx version="1.1" creator="t" '
                    'xmlns="http://www.topografix.com/GPX/1/1"><trk><trkseg>'
                    '<trkpt lat="46.0" lon="14.0"><time>0001-01-01T00:00:00Z</time></trkpt>'
                    '<trkpt lat="46.001" lon="14.0"><time>0001-01-01T00:00:05Z</time></trkpt></trkseg></trk></gpx>')
    data = bytearray(buf.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:  # spoil the compressed stream of the LZMA member
        info = zf.getinfo("activities/a.gpx")
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[at + 4:at + 9] = b"\xff" * 5  # its LZMA properties
    lines = {x["name"]: x for x in import_archive(Session, user, bytes(data))}
    assert set(lines) == {"lz", "route", "old"} and all("error" in x for x in lines.values()), lines
    assert "no times" in lines["route"]["error"] and "plausible date" in lines["old"]["error"]
    # One member named by many rows is read once.
    rows = [("one", "Ride", "activities/r.fit")] * 5
    lines = list(import_archive(Session, user, archive(rows, {"activities/r.fit": recording(RIDE_FIT)})))
    assert "activity_id" in lines[0] and all("already imported" in x["skipped"] for x in lines[1:])
