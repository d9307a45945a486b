"""Boards add up the distance others are shown of each activity, not its own: a board's
total less the distances the feed shows would otherwise tell how much of each activity an
athlete hides. On SQLite and PostgreSQL, through the worker's job (``core.jobs.shown``)."""

from __future__ import annotations

import random
import time
import uuid

import numpy as np
import pytest
from sqlalchemy import select

import core.jobs.shown as shown_job
from core.accounts.users import create_user, user_by_id
from core.activities.imports import record_track
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag
from core.challenges.groups import board as group_board
from core.challenges.groups import create_group, respond
from core.jobs.shown import settle_shown_distances
from core.social.follows import follow
from core.social.leaderboards import database_board, redis_board, refresh_redis
from core.social.privacy import hidden_ends_m
from core.social.privacy_settings import add_zone, delete_zone, set_hide_ends, set_hide_map
from core.social.shown import shown_figures
from core.social.zone_attack import outing
from tests.conftest import database_of_its_own

HOME = (46.05, 14.50)


@pytest.fixture(params=["sqlite", "postgres"])
def Session(request, tmp_path):
    with database_of_its_own(request.param, tmp_path, "shown") as factory:
        yield factory


def athletes(Session, *roles):
    tag = uuid.uuid4().hex[:6]
    with Session() as s, s.begin():
        ids = [create_user(s, f"{tag}_{r}", name=f"{r.title()} {tag}").id for r in roles]
    return ids


def runs(Session, user_id, count=2, seed=0):
    """Runs of a few kilometres that leave the athlete's home and come back to it."""
    ids = []
    with Session() as s, s.begin():
        user = user_by_id(s, user_id)
        for k in range(count):
            track = outing(random.Random(seed + k), *HOME, time.time() - 7200 - 600 * k)
            ids.append(record_track(s, user, track, visibility="public", source="demo").id)
    return ids


def shown(Session, ids):
    with Session() as s:
        return {a.id: (a.distance_m, a.shown_distance_m) for a in s.scalars(select(Activity).where(Activity.id.in_(ids)))}


def line(Session, user_id, viewer_id):
    with Session() as s:
        board = database_board(s, "week", "run", "global", viewer_id, limit=50)
    return next((e.distance_m for e in board.entries if e.user_id == user_id), None)


def feed_distance(Session, viewer_id, ids):
    """What the feed shows ``viewer_id`` of these activities, added up."""
    with Session() as s:
        acts = list(s.scalars(select(Activity).where(Activity.id.in_(ids))))
        figures = shown_figures(s, viewer_id, acts)
        return sum(figures[a.id]["distance_m"] if a.id in figures else a.distance_m for a in acts)


def settle(Session):
    while settle_shown_distances(Session):
        pass


def test_an_athlete_who_hides_nothing_counts_at_once_for_their_own_distance(Session):
    runner, viewer = athletes(Session, "runner", "viewer")
    ids = runs(Session, runner)
    figures = shown(Session, ids)
    assert all(own == seen and own > 1000 for own, seen in figures.values())
    assert line(Session, runner, viewer) == pytest.approx(sum(own for own, _ in figures.values()))


def test_a_board_adds_up_what_the_feed_shows_of_hidden_ends_not_the_whole_distance(Session):
    runner, viewer = athletes(Session, "runner", "viewer")
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 800)
    ids = runs(Session, runner, count=3)
    assert all(seen is None for _, seen in shown(Session, ids).values())
    assert line(Session, runner, viewer) is None  # not on the board until worked out: nothing leaks meanwhile
    settle(Session)
    figures = shown(Session, ids)
    own = sum(o for o, _ in figures.values())
    seen = sum(v for _, v in figures.values())
    assert seen < own - 3 * 1000  # each run hides 800 m at either end, some 1.6 km
    board = line(Session, runner, viewer)
    assert board == pytest.approx(seen)
    assert board == pytest.approx(feed_distance(Session, viewer, ids), rel=1e-9)


def test_a_zone_added_or_removed_reworks_every_activity_and_the_board_follows(Session):
    runner, viewer = athletes(Session, "runner", "viewer")
    ids = runs(Session, runner, count=2, seed=5)
    own = sum(o for o, _ in shown(Session, ids).values())
    with Session() as s, s.begin():
        zone = add_zone(s, user_by_id(s, runner), *HOME, 400, rng=random.Random(1))
        zone_id = zone.id
    assert all(v is None for _, v in shown(Session, ids).values())
    assert line(Session, runner, viewer) is None
    settle(Session)
    board = line(Session, runner, viewer)
    assert board is not None and board < own
    assert board == pytest.approx(feed_distance(Session, viewer, ids), rel=1e-9)
    with Session() as s, s.begin():
        assert delete_zone(s, user_by_id(s, runner), zone_id)
    assert line(Session, runner, viewer) == pytest.approx(own)  # nothing hidden: at once


def test_a_hidden_map_shows_and_counts_the_whole_distance(Session):
    runner, viewer = athletes(Session, "runner", "viewer")
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 800)
        set_hide_map(s, user_by_id(s, runner), True)
    ids = runs(Session, runner)
    own = sum(o for o, _ in shown(Session, ids).values())
    assert line(Session, runner, viewer) == pytest.approx(own)
    assert feed_distance(Session, viewer, ids) == pytest.approx(own)


def test_redis_boards_add_up_the_same_shown_distances(Session, redis_client):
    runner, viewer = athletes(Session, "runner", "viewer")
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 1000)
    ids = runs(Session, runner, count=2, seed=9)
    settle(Session)
    with Session() as s:
        refresh_redis(s, redis_client)
        board = redis_board(s, redis_client, "week", "run", "global", viewer, limit=50)
    mine = next(e.distance_m for e in board.entries if e.user_id == runner)
    assert mine == pytest.approx(feed_distance(Session, viewer, ids), rel=1e-6)


def test_a_group_board_shows_others_what_they_are_shown_and_the_athlete_all_of_their_own(Session):
    runner, friend = athletes(Session, "runner", "friend")
    with Session() as s, s.begin():
        a, b = user_by_id(s, runner), user_by_id(s, friend)
        follow(s, a, b)
        follow(s, b, a)
        group_id = create_group(s, a, "most_distance", [friend], sport="run").id
        respond(s, friend, group_id, True)
        set_hide_ends(s, a, 800)
    ids = runs(Session, runner, count=2, seed=3)
    with Session() as s, s.begin():  # the board counts scored activities only
        for activity_id in ids:
            s.add(ActivityFlag(activity_id=activity_id, user_id=runner, sport="run", score=0.1, status="clear",
                               reasons=[], codes="", verdict={}, features={}))
    settle(Session)
    figures = shown(Session, ids)
    with Session() as s:
        theirs = {r.user_id: r.value for r in group_board(s, group_id, friend).rows}
        mine = {r.user_id: r.value for r in group_board(s, group_id, runner).rows}
    assert theirs[runner] == pytest.approx(sum(v for _, v in figures.values()))
    assert mine[runner] == pytest.approx(sum(o for o, _ in figures.values()))
    assert theirs[runner] < mine[runner]


def test_a_hiding_changed_while_the_points_were_cut_is_not_overwritten(Session, monkeypatch):
    runner, viewer = athletes(Session, "runner", "viewer")
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 500)
    ids = runs(Session, runner, count=1)
    real = shown_job.shown_distance

    def changed_meanwhile(s, activity, hiding):
        metres = real(s, activity, hiding)
        with Session() as other, other.begin():
            set_hide_ends(other, user_by_id(other, runner), 1200)
        return metres

    monkeypatch.setattr(shown_job, "shown_distance", changed_meanwhile)
    done = settle_shown_distances(Session)
    assert done["shown"]["changed_meanwhile"] == 1 and done["shown"]["cut"] == 0
    assert shown(Session, ids)[ids[0]][1] is None
    monkeypatch.setattr(shown_job, "shown_distance", real)
    settle(Session)
    assert line(Session, runner, viewer) == pytest.approx(feed_distance(Session, viewer, ids), rel=1e-9)


def test_activities_stored_before_shown_distances_existed_are_worked_out_in_passes(Session):
    people = athletes(Session, "a", "b", "c", "viewer")
    ids = [i for k, p in enumerate(people[:3]) for i in runs(Session, p, count=2, seed=20 + 3 * k)]
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, people[2]), 600)
        for a in s.scalars(select(Activity).where(Activity.id.in_(ids))):
            a.shown_distance_m = None  # as the migration leaves them
    first = settle_shown_distances(Session, plain_limit=3, cut_limit=1)["shown"]
    assert first["own"] == 3 and first["cut"] == 1
    settle(Session)
    figures = shown(Session, ids)
    assert all(v is not None for _, v in figures.values())
    assert line(Session, people[2], people[3]) == pytest.approx(
        feed_distance(Session, people[3], ids[4:]), rel=1e-9)
    assert line(Session, people[0], people[3]) == pytest.approx(sum(figures[i][0] for i in ids[:2]))


def test_a_run_completed_live_by_a_hiding_athlete_waits_for_the_job_and_a_late_fix_sends_it_back(Session,
                                                                                                monkeypatch):
    """The device path (create, points, complete) leaves a hiding athlete's figure for the
    worker; points added after the figure was read (a late fix) keep the job from writing
    one worked out from the points before."""
    from core.activities.imports import track_point_rows
    from core.activities.lifecycle import change_status, create_activity
    from core.storage.points import insert_new_points

    runner, viewer = athletes(Session, "runner", "viewer")
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 700)
    track = outing(random.Random(12), *HOME, time.time() - 5400)
    with Session() as s, s.begin():
        a = create_activity(s, user_by_id(s, runner), "run", title="live")
        insert_new_points(s, track_point_rows(a.id, track, np.arange(len(track) - 5), 0))
        change_status(s, a, "start", at=float(track.t[0]))
        change_status(s, a, "stop", at=float(track.t[-6]))
        change_status(s, a, "complete", at=float(track.t[-6]) + 1)
        activity_id = a.id
    assert shown(Session, [activity_id])[activity_id][1] is None
    real = shown_job.shown_distance

    def late_fix_meanwhile(s, activity, hiding):
        metres = real(s, activity, hiding)
        with Session() as other, other.begin():
            insert_new_points(other, track_point_rows(activity_id, track, np.arange(len(track) - 5, len(track)),
                                                      len(track) - 5))
        return metres

    monkeypatch.setattr(shown_job, "shown_distance", late_fix_meanwhile)
    done = settle_shown_distances(Session)["shown"]
    monkeypatch.setattr(shown_job, "shown_distance", real)
    assert done["changed_meanwhile"] == 1 and done["cut"] == 0
    settle(Session)
    own, seen = shown(Session, [activity_id])[activity_id]
    assert seen is not None and seen < own - 1000
    assert line(Session, runner, viewer) == pytest.approx(seen)


def test_an_activity_whose_points_cannot_be_read_waits_and_holds_nobody_up(Session, monkeypatch):
    runner, other, viewer = athletes(Session, "runner", "other", "viewer")
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 500)
        set_hide_ends(s, user_by_id(s, other), 500)
    broken = runs(Session, runner, count=1, seed=30)[0]
    fine = runs(Session, other, count=1, seed=31)[0]
    real = shown_job.shown_distance

    def unreadable(s, activity, hiding):
        if activity.id == broken:
            raise OSError("the archive is away")
        return real(s, activity, hiding)

    monkeypatch.setattr(shown_job, "shown_distance", unreadable)
    done = settle_shown_distances(Session)["shown"]
    assert done["failed"] == 1 and done["cut"] == 1
    assert settle_shown_distances(Session) == {}  # not tried again at once: the loops above end
    assert shown(Session, [broken])[broken][1] is None and line(Session, runner, viewer) is None
    assert shown(Session, [fine])[fine][1] is not None
    monkeypatch.setattr(shown_job, "RETRY_S", 0.0)
    shown_job.turns_of(Session).waiting.clear()
    monkeypatch.setattr(shown_job, "shown_distance", real)
    settle(Session)
    assert shown(Session, [broken])[broken][1] is not None


def test_athletes_are_taken_in_turns_so_long_backlogs_hold_nobody_up(Session, monkeypatch):
    hiders = athletes(Session, "h1", "h2", "h3")
    plain_one, viewer = athletes(Session, "plain", "viewer")
    for k, h in enumerate(hiders):
        with Session() as s, s.begin():
            set_hide_ends(s, user_by_id(s, h), 400)
        runs(Session, h, count=2, seed=40 + 2 * k)
    mine = runs(Session, plain_one, count=1, seed=50)
    with Session() as s, s.begin():
        s.get(Activity, mine[0]).shown_distance_m = None  # as the migration leaves it
    monkeypatch.setattr(shown_job, "SHOWN_USERS", 2)
    done = settle_shown_distances(Session, cut_limit=3)["shown"]
    assert done["cut"] == 3
    assert done["own"] == 1, "the athlete who hides nothing waited behind the others' backlogs"
    assert line(Session, plain_one, viewer) is not None


def test_hiding_the_same_again_changes_nothing_and_redis_lines_go_until_worked_out(Session, redis_client):
    from core.social.leaderboards import drop_lines

    runner, viewer = athletes(Session, "runner", "viewer")
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 600)
    ids = runs(Session, runner, count=1, seed=60)
    settle(Session)
    before = shown(Session, ids)
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 600)  # the same again
        set_hide_map(s, user_by_id(s, runner), False)  # as it was
    assert shown(Session, ids) == before
    with Session() as s:
        refresh_redis(s, redis_client)
        assert any(e.user_id == runner for e in redis_board(s, redis_client, "week", "run", "global", viewer,
                                                             limit=50).entries)
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, runner), 1200)
    assert drop_lines(redis_client, runner) >= 1
    with Session() as s:
        assert not any(e.user_id == runner for e in redis_board(s, redis_client, "week", "run", "global", viewer,
                                                                 limit=50).entries)
    assert drop_lines(None, runner) == 0


@pytest.fixture
def PgSession(tmp_path):
    with database_of_its_own("postgres", tmp_path, "shown_race") as factory:
        yield factory


def test_an_upload_landing_while_a_zone_is_added_is_not_counted_whole(PgSession):
    """PostgreSQL, read committed: an import that reads what the athlete hides while a new
    zone is not committed yet would count its run whole for good. The zone's transaction
    holds the athlete's lock (``hold_hiding``) until it commits, so the import reads the zone."""
    import threading

    Session = PgSession
    runner, viewer = athletes(Session, "runner", "viewer")
    zone_tx = Session()
    zone_tx.begin()
    add_zone(zone_tx, user_by_id(zone_tx, runner), *HOME, 400, rng=random.Random(2))
    landed: dict = {}

    def upload():
        try:
            landed["ids"] = runs(Session, runner, count=1, seed=70)
        except Exception as exc:  # noqa: BLE001 - reported below
            landed["error"] = exc

    thread = threading.Thread(target=upload)
    thread.start()
    thread.join(1.0)  # the upload reaches the lock and waits (or, on a slow machine, gets there later)
    zone_tx.commit()
    zone_tx.close()
    thread.join(120)
    assert not thread.is_alive() and "error" not in landed, landed
    (activity_id,) = landed["ids"]
    assert shown(Session, [activity_id])[activity_id][1] is None  # left for the job, not its whole distance
    settle(Session)
    own, seen = shown(Session, [activity_id])[activity_id]
    assert seen < own
    assert line(Session, runner, viewer) == pytest.approx(feed_distance(Session, viewer, [activity_id]), rel=1e-9)


def test_uploads_hiding_changes_and_the_job_at_once_neither_deadlock_nor_leave_a_stale_figure(PgSession):
    """PostgreSQL: uploads (with a file hash, which locks the athlete's row), changes of
    zones and hidden ends, and the job, in threads at once on one athlete: none fails (a
    deadlock is an error), and afterwards every figure is what is hidden now leaves."""
    import threading

    from core.activities.imports import import_track
    from core.social.privacy import hidings_of
    from core.social.privacy_settings import zones_of
    from core.social.shown import shown_distance

    Session = PgSession
    runner, viewer = athletes(Session, "runner", "viewer")
    errors: list = []

    def guarded(work):
        def run():
            try:
                work()
            except Exception as exc:  # noqa: BLE001 - collected and reported
                errors.append(repr(exc))
        return run

    def uploads():
        for k in range(6):
            with Session() as s:
                user = user_by_id(s, runner)
                s.expunge(user)
            track = outing(random.Random(100 + k), *HOME, time.time() - 86400 + 900 * k)
            import_track(Session, user, track, visibility="public", source="upload", source_hash=f"h{k}")

    def hiding():
        rng = random.Random(5)
        for k in range(8):
            with Session() as s, s.begin():
                user = user_by_id(s, runner)
                if k % 2:
                    set_hide_ends(s, user, rng.choice([0, 300, 900]))
                else:
                    zones = [z.id for z in zones_of(s, runner)]
                    if zones:
                        delete_zone(s, user, zones[0])
                    else:
                        add_zone(s, user, *HOME, 300, rng=rng)

    def job():
        for _ in range(10):
            settle_shown_distances(Session)

    threads = [threading.Thread(target=guarded(w)) for w in (uploads, hiding, job)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    settle(Session)
    with Session() as s:
        hiding_now = hidings_of(s, [runner])[runner]
        for a in s.scalars(select(Activity).where(Activity.user_id == runner)):
            assert a.shown_distance_m == pytest.approx(shown_distance(s, a, hiding_now), rel=1e-9), a.id


def test_a_hiding_request_is_not_taken_for_unchanged_against_a_value_replaced_meanwhile(PgSession):
    """PostgreSQL, read committed: a request that loaded the athlete before another one
    changed their hidden ends compares with what is stored now, not with what it loaded: the
    later request (back to nothing hidden) wins, and the shown distances follow it."""
    (runner,) = athletes(PgSession, "runner")
    ids = runs(PgSession, runner, count=1, seed=61)
    settle(PgSession)
    whole = shown(PgSession, ids)
    with PgSession() as s, s.begin():
        stale = user_by_id(s, runner)  # loaded: nothing hidden
        with PgSession() as other, other.begin():
            set_hide_ends(other, user_by_id(other, runner), 800)
        set_hide_ends(s, stale, 0)
    with PgSession() as s:
        assert hidden_ends_m(user_by_id(s, runner).settings) == 0
    settle(PgSession)
    assert shown(PgSession, ids) == whole
