"""Activity lifecycle and point ingest, on SQLite and PostgreSQL."""

import random

import pytest
from sqlalchemy import select

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.ingest import ingest_points
from core.activities.lifecycle import (
    ActivityClosed,
    ActivityError,
    InvalidTransition,
    NotFound,
    change_status,
    create_activity,
    delete_activity,
    edit_activity,
    get_owned_activity,
)
from core.activities.tables import Activity
from core.social.comments import add_comment
from core.social.kudos import give_kudos
from core.storage.points import RoutePoint, count_points
from core.synthetic.tracks import synthetic_track

T0 = 1_700_000_000.0


def points(seqs, speed=3.0, step=5.0):
    return [{"seq": i, "t": T0 + i * step, "lat": 46.05 + i * step * speed / 111_180, "lon": 14.5}
            for i in seqs]


@pytest.fixture
def athlete(session):
    return create_user(session, "runner_1", "Runner One")


@pytest.fixture
def run_1(session, athlete):
    return create_activity(session, athlete, "run", title="Morning run")


def test_full_lifecycle_reaches_completed_with_a_summary(session, run_1):
    """start, pause, resume, stop, complete: the summary comes from the stored track."""
    change_status(session, run_1, "start", at=T0)
    ingest_points(session, run_1, points(range(0, 201)))
    change_status(session, run_1, "stop", at=T0 + 1001)
    change_status(session, run_1, "complete", at=T0 + 1010)
    assert run_1.status == "completed"
    assert run_1.distance_m == pytest.approx(3000, rel=0.01)
    assert run_1.moving_time_s == pytest.approx(1000)
    assert run_1.avg_pace_s_per_km == pytest.approx(333.3, rel=0.01)


def test_a_repeated_command_is_a_no_op(session, run_1):
    """Starting twice leaves the activity active and logs one event."""
    change_status(session, run_1, "start", at=T0)
    again = change_status(session, run_1, "start", at=T0 + 5)
    assert again.status == "active"


@pytest.mark.parametrize("command", ["pause", "resume", "stop", "complete"])
def test_invalid_transitions_are_refused_with_a_reason(session, run_1, command):
    """A created activity can only be started or discarded."""
    with pytest.raises(InvalidTransition, match=f"cannot {command} an activity that is created"):
        change_status(session, run_1, command)


def test_an_unknown_command_is_refused(session, run_1):
    """Commands outside the lifecycle get an error code of their own."""
    with pytest.raises(InvalidTransition) as err:
        change_status(session, run_1, "teleport")
    assert err.value.code == "unknown_command"


def test_a_discarded_activity_takes_no_more_points(session, run_1):
    """Discard closes the activity."""
    change_status(session, run_1, "discard")
    with pytest.raises(ActivityClosed):
        ingest_points(session, run_1, points([0]))


def test_a_batch_sent_twice_is_stored_once(session, run_1):
    """Resending the same sequence numbers stores nothing new."""
    change_status(session, run_1, "start", at=T0)
    first = ingest_points(session, run_1, points(range(10)))
    second = ingest_points(session, run_1, points(range(10)))
    assert (first.stored, first.duplicates) == (10, 0)
    assert (second.stored, second.duplicates) == (0, 10)
    assert count_points(session, run_1.id) == 10


def test_points_out_of_order_are_stored_and_read_in_time_order(session, run_1):
    """Late batches fill in; reading the track gives time order."""
    change_status(session, run_1, "start", at=T0)
    ingest_points(session, run_1, points([5, 6, 7]))
    ingest_points(session, run_1, points([0, 1, 2, 3, 4]))
    times = session.scalars(select(RoutePoint.t).where(RoutePoint.activity_id == run_1.id)
                            .order_by(RoutePoint.t)).all()
    seqs = session.scalars(select(RoutePoint.seq).where(RoutePoint.activity_id == run_1.id)
                           .order_by(RoutePoint.t)).all()
    assert seqs == list(range(8))
    assert times == sorted(times)


def test_points_sent_while_paused_are_kept_but_not_counted(session, run_1):
    """A pause with the athlete walking on: kept in storage, out of distance and time."""
    change_status(session, run_1, "start", at=T0)
    ingest_points(session, run_1, points(range(0, 101)))
    change_status(session, run_1, "pause", at=T0 + 502)
    ingest_points(session, run_1, points(range(101, 161)))  # 300 s recorded while paused
    change_status(session, run_1, "resume", at=T0 + 802)
    ingest_points(session, run_1, points(range(161, 262)))
    change_status(session, run_1, "stop", at=T0 + 1400)
    change_status(session, run_1, "complete", at=T0 + 1400)
    assert count_points(session, run_1.id) == 262
    assert run_1.summary["dropped"]["paused"] == 60
    assert run_1.moving_time_s == pytest.approx(1000, abs=10)
    assert run_1.distance_m == pytest.approx(3000 + 15, rel=0.02)


def test_points_after_completion_are_rejected(session, run_1):
    """A completed activity is closed for ingest."""
    change_status(session, run_1, "start", at=T0)
    ingest_points(session, run_1, points(range(20)))
    change_status(session, run_1, "stop", at=T0 + 100)
    change_status(session, run_1, "complete", at=T0 + 100)
    with pytest.raises(ActivityClosed, match="completed"):
        ingest_points(session, run_1, points([20]))


@pytest.mark.parametrize("bad", [{"seq": -1, "t": T0}, {"seq": "a", "t": T0}, {"seq": 1},
                                 {"seq": 1, "t": float("nan")}, {"seq": 1, "t": T0, "lat": "x"}])
def test_malformed_points_are_rejected_with_a_reason(session, run_1, bad):
    """Bad sequence numbers, times or coordinates give an invalid_point error."""
    change_status(session, run_1, "start", at=T0)
    with pytest.raises(ActivityError) as err:
        ingest_points(session, run_1, [bad])
    assert err.value.code == "invalid_point"


def test_another_users_activity_is_not_found(session, run_1):
    """Ownership is checked; someone else's id looks like no id at all."""
    other = create_user(session, "someone_else")
    with pytest.raises(NotFound):
        get_owned_activity(session, run_1.id, other.id)


def test_sport_must_be_run_or_ride(session, athlete):
    """Only runs and rides are recorded."""
    with pytest.raises(ActivityError, match="sport"):
        create_activity(session, athlete, "swim")


def test_owner_edits_and_deletes_an_activity(session):
    owner, fan = create_user(session, "editor_1"), create_user(session, "fan_1")
    activity = record_track(session, owner, synthetic_track(random.Random(3), "run", T0, 46, 14, 15, 3.0),
                            visibility="public", source="demo")
    edit_activity(session, activity, title="  Hill repeats  ", visibility="private")
    assert (activity.title, activity.visibility) == ("Hill repeats", "private")
    for bad in ({"title": "   "}, {"visibility": "friends-of-friends"}):
        with pytest.raises(ActivityError):
            edit_activity(session, activity, **bad)
    edit_activity(session, activity, title="x" * 201)
    assert activity.title == "x" * 199 + "…"
    edit_activity(session, activity, visibility="public")
    add_comment(session, fan, activity.id, "nice")
    give_kudos(session, fan, activity.id)
    activity_id = activity.id
    delete_activity(session, activity)
    assert session.get(Activity, activity_id) is None
    assert count_points(session, activity_id) == 0
