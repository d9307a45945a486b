"""Importing a file in short write transactions, on SQLite and PostgreSQL: a real recording
ends up exactly as ``record_track`` stores it, written a chunk of points per transaction; an
import in progress is seen by nobody; a failure midway, or the same file finishing first
elsewhere, leaves nothing of it behind."""

from __future__ import annotations

import csv
import random
import time
import uuid

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

import core.activities.imports as imports_module
from core.accounts.tables import User
from core.accounts.users import create_user
from core.activities.imports import IMPORT_CHUNK_POINTS, import_track, record_track
from core.activities.ingest import point_rows
from core.activities.lifecycle import ActivityError, create_activity
from core.activities.tables import Activity
from core.social.feed import feed_page
from core.social.follows import follow
from core.social.visibility import can_view
from core.storage.engine import WRITE_LOCKS
from core.storage.points import count_points, insert_points, stored_track
from core.synthetic.tracks import synthetic_track
from core.tracks.formats import load_track

SUMMARY_COLUMNS = ("sport", "status", "title", "visibility", "start_time", "completed_at", "distance_m",
                   "moving_time_s", "elapsed_time_s", "avg_pace_s_per_km", "avg_speed_mps", "max_speed_mps",
                   "best_1km_s", "elevation_gain_m", "elevation_loss_m", "point_count", "summary")


@pytest.fixture(scope="module")
def largest_track(shared_tracks):
    """The real recording with the most points (the manifest says which), as a ride if the
    file's sport is neither a run nor a ride."""
    with open(shared_tracks / "manifest.csv", newline="") as fh:
        row = max(csv.DictReader(fh), key=lambda r: int(r["points"]))
    track = load_track(shared_tracks / row["file"])
    sport = track.sport if track.sport in ("run", "ride") else "ride"
    return row["file"], track, sport


def athlete(Session, *, followed_by: str | None = None):
    """A new athlete (detached), optionally followed by another new one."""
    with Session() as s, s.begin():
        user = create_user(s, f"imp_{uuid.uuid4().hex[:10]}")
        if followed_by is not None:
            follow(s, create_user(s, followed_by), user)
    return user


def small_ride(seed: int = 1):
    return synthetic_track(random.Random(seed), "ride", time.time() - 7200, 46.0, 14.5, 30, 7.0)


def long_ride(seed: int):
    """Seven hours logged every 3 s: more than four chunks of points."""
    return synthetic_track(random.Random(seed), "ride", time.time() - 8 * 3600, 46.0, 14.5, 420, 7.0)


def test_a_real_recording_imported_in_chunks_matches_record_track(engine, largest_track):
    """Same summary columns, same points, as storing it in one transaction."""
    name, track, sport = largest_track
    Session = sessionmaker(engine, expire_on_commit=False)
    with Session() as s, s.begin():
        at_once = record_track(s, create_user(s, f"imp_{uuid.uuid4().hex[:10]}"), track, sport=sport,
                               visibility="public", source_hash="a" * 64)
    imported = import_track(Session, athlete(Session), track, sport=sport, visibility="public",
                            source_hash="a" * 64)
    for column in SUMMARY_COLUMNS:
        assert getattr(imported, column) == getattr(at_once, column), column
    assert imported.point_count == len(track)
    with Session() as s:
        stored = stored_track(s, s.get(Activity, imported.id))
        expected = stored_track(s, s.get(Activity, at_once.id))
        assert count_points(s, imported.id) == count_points(s, at_once.id) > IMPORT_CHUNK_POINTS
    for column in ("t", "lat", "lon", "ele", "acc", "hr", "cad"):
        np.testing.assert_array_equal(getattr(stored, column), getattr(expected, column), err_msg=column)


def test_a_long_track_is_written_in_more_than_one_transaction(engine, largest_track):
    """One transaction per chunk of points, plus the completion; the longest is printed."""
    name, track, sport = largest_track
    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    WRITE_LOCKS.snapshot(reset=True)
    imported = import_track(Session, user, track, sport=sport)
    locks = WRITE_LOCKS.snapshot()["import"]
    chunks = -(-imported.point_count // IMPORT_CHUNK_POINTS)
    assert locks["count"] == chunks + 1 > 2
    print(f"\n{engine.dialect.name}: {name}, {len(track):,} points in {locks['count']} import write "
          f"transactions: longest {locks['max_ms']} ms, median {locks['p50_ms']} ms")


def test_an_import_in_progress_is_seen_by_nobody(engine, monkeypatch):
    """Between chunks the activity is created and private: a follower can neither open it nor
    find it in their feed; once complete it has the visibility asked for."""
    Session = sessionmaker(engine, expire_on_commit=False)
    fan_name = f"fan_{uuid.uuid4().hex[:10]}"
    user = athlete(Session, followed_by=fan_name)
    seen = []
    real_insert = imports_module.insert_new_points

    def insert_and_look(s, rows):
        real_insert(s, rows)
        with Session() as other:  # another connection: what the rest of the world sees now
            fan = other.scalars(select(User).where(User.username == fan_name)).one()
            mine = other.scalars(select(Activity).where(Activity.user_id == user.id)).all()
            feed = feed_page(other, fan.id, cursor=None, limit=50).items
            seen.append([(a.status, a.visibility, can_view(other, fan.id, a), a in feed) for a in mine])

    monkeypatch.setattr(imports_module, "insert_new_points", insert_and_look)
    imported = import_track(Session, user, long_ride(4), visibility="public")
    assert len(seen) > 2
    assert all(row == [("created", "private", False, False)] for row in seen[1:])
    with Session() as s:
        fan = s.scalars(select(User).where(User.username == fan_name)).one()
        assert (imported.status, imported.visibility) == ("completed", "public")
        assert can_view(s, fan.id, s.get(Activity, imported.id))


def test_a_failure_midway_leaves_no_activity_behind(engine, monkeypatch):
    """The third chunk's insert fails: the error comes out, and the activity and the points
    already written are gone."""
    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    calls = []
    real_insert = imports_module.insert_new_points

    def fail_third(s, rows):
        calls.append(rows[0][0])  # the activity id
        if len(calls) == 3:
            raise RuntimeError("disk full")
        real_insert(s, rows)

    monkeypatch.setattr(imports_module, "insert_new_points", fail_third)
    track = long_ride(5)
    assert len(track) > 3 * IMPORT_CHUNK_POINTS
    with pytest.raises(RuntimeError, match="disk full"):
        import_track(Session, user, track)
    with Session() as s:
        assert s.scalars(select(Activity).where(Activity.user_id == user.id)).all() == []
        assert count_points(s, calls[0]) == 0


def test_the_same_file_finished_first_elsewhere_is_refused_at_completion(engine, monkeypatch):
    """Another import of the same file completes while this one writes its points: this one is
    refused as a duplicate when it completes, and only the other is left."""
    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    real_summarise = imports_module.summarise

    def summarise_while_the_other_finishes(*args, **kwargs):
        monkeypatch.setattr(imports_module, "summarise", real_summarise)  # once: record_track summarises too
        with Session() as s, s.begin():
            record_track(s, s.get(User, user.id), small_ride(), source_hash="b" * 64)
        return real_summarise(*args, **kwargs)

    monkeypatch.setattr(imports_module, "summarise", summarise_while_the_other_finishes)
    with pytest.raises(ActivityError, match="already imported") as refused:
        import_track(Session, user, small_ride(), source_hash="b" * 64)
    assert refused.value.code == "duplicate"
    with Session() as s:
        left = s.scalars(select(Activity).where(Activity.user_id == user.id)).all()
        assert [a.status for a in left] == ["completed"]


def test_a_file_is_refused_the_second_time_but_not_for_an_unfinished_import_of_it(engine):
    """An import that died midway does not make the file a duplicate; a completed one does."""
    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    with Session() as s, s.begin():
        orphan = create_activity(s, user, "ride", source="upload")
        orphan.source_hash = "c" * 64
        insert_points(s, point_rows(orphan.id, [{"seq": 0, "t": time.time() - 60, "lat": 46.0, "lon": 14.5}]))
    first = import_track(Session, user, small_ride(), source_hash="c" * 64)
    assert first.status == "completed"
    with pytest.raises(ActivityError, match=f"already imported as activity {first.id}"):
        import_track(Session, user, small_ride(), source_hash="c" * 64)


def test_an_import_checks_sport_and_visibility_before_writing_anything(engine):
    """A file whose sport is neither a run nor a ride, or a visibility not on offer, is refused
    with the reason, and nothing is stored."""
    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    swim = small_ride()
    swim.sport = "other"
    with pytest.raises(ActivityError, match="choose one"):
        import_track(Session, user, swim)
    with pytest.raises(ActivityError, match="visibility"):
        import_track(Session, user, small_ride(), visibility="everyone")
    with Session() as s:
        assert s.scalars(select(Activity).where(Activity.user_id == user.id)).all() == []


def gpx(times: list[str], lat0: float = 46.0) -> bytes:
    """A run of one point per time given (ISO text), 10 m apart."""
    points = "".join(f'<trkpt lat="{lat0 + k * 9e-5:.6f}" lon="14.5"><time>{t}</time></trkpt>'
                     for k, t in enumerate(times))
    return (f'<?xml version="1.0"?><gpx version="1.1" creator="test" xmlns="http://www.topografix.com/GPX/1/1">'
            f'<trk><type>running</type><trkseg>{points}</trkseg></trk></gpx>').encode()


def iso(t: float, offset_h: int = 0) -> str:
    from datetime import UTC, datetime, timedelta, timezone

    when = datetime.fromtimestamp(t, tz=UTC).astimezone(timezone(timedelta(hours=offset_h)))
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


@pytest.mark.parametrize("times, why", [
    (["0001-01-01T08:00:00Z", "0001-01-01T08:00:05Z", "0001-01-01T08:00:10Z"], "not a plausible date"),
    (["1900-06-01T08:00:00Z", "1900-06-01T08:00:05Z", "1900-06-01T08:00:10Z"], "not a plausible date"),
    ([iso(time.time() + 10 * 365 * 86400 + 5 * k) for k in range(3)], "not a plausible date"),
    ([iso(time.time() + 2 * 3600 + 5 * k) for k in range(3)], "not a plausible date"),  # local time marked Z
    (["yesterday", "yesterday", "yesterday"], "holds no times"),
    ([iso(time.time() - 86400)], "a single moment"),  # one point
    ([iso(time.time() - 86400)] * 100, "a single moment"),  # every point at one time
    ([iso(time.time() - 86400 - 5 * k) for k in range(50)], "a single moment"),  # backwards: the first alone is kept
])
def test_an_uploaded_file_without_plausible_times_is_refused_as_the_archive_import_refuses_it(engine, times, why):
    from core.activities.imports import import_file

    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    with pytest.raises(ActivityError, match=why):
        import_file(Session, user, "odd.gpx", gpx(times))
    with Session() as s:
        assert s.scalars(select(Activity).where(Activity.user_id == user.id)).all() == []


def test_the_same_run_uploaded_in_another_file_is_recognised(engine):
    """The same recording with its times written with another offset (another app's export,
    this tracker's own GPX) is the same run at the same time, not a new one."""
    from core.activities.imports import import_file

    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    t0 = time.time() - 3 * 86400
    first = import_file(Session, user, "run.gpx", gpx([iso(t0 + 5 * k) for k in range(60)]))
    again = gpx([iso(t0 + 5 * k, offset_h=2) for k in range(60)])
    with pytest.raises(ActivityError, match=f"activity {first.id} is the same run at the same time") as refused:
        import_file(Session, user, "run-export.gpx", again)
    assert refused.value.code == "duplicate"
    # Another athlete's is not the same activity; given as a ride, it is the same recording.
    assert import_file(Session, athlete(Session), "run-export.gpx", again).sport == "run"
    with pytest.raises(ActivityError, match=f"activity {first.id} is the same run at the same time"):
        import_file(Session, user, "ride.gpx", again, sport="ride")


def test_the_same_recording_without_its_first_minutes_is_recognised(engine):
    """A device logs times before it has a position; another export of the recording (a
    plain GPX) leaves those minutes out, so it starts later and is shorter: it shares all of
    its time with the first import, and is the same. A run the next hour shares none."""
    from core.activities.imports import import_file

    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    t0 = time.time() - 4 * 86400
    first = import_file(Session, user, "ride.gpx", gpx([iso(t0 + 5 * k) for k in range(720)]))  # an hour
    later = gpx([iso(t0 + 5 * k) for k in range(120, 720)], lat0=46.0108)  # 10 minutes in
    with pytest.raises(ActivityError, match=f"activity {first.id} is the same run at the same time"):
        import_file(Session, user, "ride-export.gpx", later)
    next_hour = import_file(Session, user, "next.gpx", gpx([iso(t0 + 3605 + 5 * k) for k in range(600)]))
    assert next_hour.id != first.id and next_hour.status == "completed"


def test_a_lone_point_with_an_unset_clock_does_not_refuse_the_recording_nor_hide_a_duplicate(engine):
    """The cleaner leaves such a point out (a clock jump), and so does the check of the date:
    the activity starts at its first good time, and the same run with such a point put in
    front is still the same run."""
    from core.activities.imports import import_file

    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    t0 = time.time() - 5 * 86400
    good = [iso(t0 + 5 * k) for k in range(60)]
    first = import_file(Session, user, "run.gpx", gpx(["1970-01-01T00:00:00Z", *good]))
    assert first.start_time.timestamp() == pytest.approx(int(t0), abs=1)
    with pytest.raises(ActivityError, match="the same run at the same time"):
        import_file(Session, user, "run-2.gpx", gpx(["1989-12-31T00:00:00Z", *good[1:]]))


def test_two_short_sprints_a_minute_apart_are_both_kept(engine):
    """Two 40 s recordings starting 50 s apart share no time: two activities."""
    from core.activities.imports import import_file

    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    t0 = time.time() - 2 * 86400
    first = import_file(Session, user, "rep1.gpx", gpx([iso(t0 + 5 * k) for k in range(9)]))
    second = import_file(Session, user, "rep2.gpx", gpx([iso(t0 + 50 + 5 * k) for k in range(9)], lat0=46.001))
    assert first.id != second.id


def test_a_file_of_a_recording_still_open_on_a_device_is_the_same_recording(engine):
    """The watch's file of a session its phone is still recording live: refused, or the
    athlete would have two once the live one completes."""
    from core.activities.imports import import_file
    from core.activities.lifecycle import change_status

    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    t0 = time.time() - 3000
    with Session() as s, s.begin():
        live = create_activity(s, s.get(User, user.id), "run", title="live")
        change_status(s, live, "start", at=t0)
        live_id = live.id
    with pytest.raises(ActivityError, match=f"activity {live_id}, a run at the same time, is still being recorded"):
        import_file(Session, user, "watch.gpx", gpx([iso(t0 + 2 + 5 * k) for k in range(590)]))


def test_a_file_is_cleaned_as_the_sport_it_is_uploaded_as(engine):
    """A GPX whose track type is unknown, uploaded as a run, has a run's limits (a 20 m/s
    glitch is a spike of a run), as its stored points have when recomputed."""
    from core.activities.imports import import_file
    from core.activities.summary import summarise_activity

    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    t0 = time.time() - 86400
    document = gpx([iso(t0 + 5 * k) for k in range(120)]).replace(b"<type>running</type>", b"<type>mystery</type>")
    document = document.replace(b'lat="46.000900"', b'lat="46.002000"')  # 122 m off at point 10, and back
    run = import_file(Session, user, "odd.gpx", document, sport="run")
    with Session() as s:
        again = summarise_activity(s, s.get(Activity, run.id))
    assert run.sport == "run" and run.max_speed_mps < 5.0
    assert run.distance_m == pytest.approx(again.distance_m) and run.max_speed_mps == pytest.approx(again.max_speed_mps)


def test_a_run_started_just_after_a_false_start_is_not_taken_for_it(engine):
    """A 25 s false start, then the real run 45 s later: they start within a minute of each
    other but do not last as long, so both are kept."""
    from core.activities.imports import import_file

    Session = sessionmaker(engine, expire_on_commit=False)
    user = athlete(Session)
    t0 = time.time() - 6 * 86400
    false_start = import_file(Session, user, "oops.gpx", gpx([iso(t0 + 5 * k) for k in range(6)]))
    real = import_file(Session, user, "run.gpx", gpx([iso(t0 + 45 + 5 * k) for k in range(120)], lat0=46.01))
    assert false_start.id != real.id and real.status == "completed"
