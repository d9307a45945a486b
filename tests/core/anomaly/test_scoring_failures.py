"""An activity whose scoring fails does not hold up the others (``core.anomaly.failures``):
it is written down and tried again later, given up on after a few attempts and shown to the
moderators, who can have it tried again; a verdict from any path removes the failure; a
database error is the service's and fails the round as before, writing nothing down."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select, update
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    StatementError,
)

import core.anomaly.scoring as scoring
from core.accounts.users import create_user
from core.anomaly import failures
from core.anomaly.tables import ActivityFlag, ScoringFailure
from core.storage.base import utcnow
from tests.conftest import database_of_its_own
from tests.core.jobs.test_scoring_stream import activities

UNREADABLE = RuntimeError("the track cannot be read")


def failing_on(monkeypatch, bad: set[int], error: Exception = UNREADABLE) -> list[int]:
    """Scoring fails with ``error`` for the activities in ``bad`` (a set the caller may change
    as it goes); the list returned grows with every activity scoring tries."""
    real, tried = scoring.assess_stored, []

    def assess(s, activity, *args, **kwargs):
        tried.append(activity.id)
        if activity.id in bad:
            raise error
        return real(s, activity, *args, **kwargs)

    monkeypatch.setattr(scoring, "assess_stored", assess)
    return tried


def flagged(Session) -> set[int]:
    with Session() as s:
        return set(s.scalars(select(ActivityFlag.activity_id)))


def failure(Session, activity_id: int) -> ScoringFailure | None:
    with Session() as s:
        return s.get(ScoringFailure, activity_id)


def make_due(Session, activity_id: int) -> None:
    with Session() as s, s.begin():
        s.execute(update(ScoringFailure).where(ScoringFailure.activity_id == activity_id)
                  .values(retry_at=utcnow() - timedelta(seconds=1)))


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_failing_activity_waits_and_the_others_are_scored(kind, tmp_path, monkeypatch):
    with database_of_its_own(kind, tmp_path, "failures") as Session:
        ids = activities(Session, 4)
        bad = ids[0]  # the oldest: first in every round
        failing_on(monkeypatch, {bad})
        assert scoring.score_pending(Session, None, 0.5) == 3
        assert flagged(Session) == set(ids[1:])
        first = failure(Session, bad)
        assert first.attempts == 1 and first.error == "RuntimeError: the track cannot be read"
        assert first.retry_at - first.failed_at == timedelta(seconds=failures.RETRY_AFTER_S[0])
        assert first.user_id is not None
        # Not due yet: not tried, not counted again.
        assert scoring.score_pending(Session, None, 0.5) == 0
        assert failure(Session, bad).attempts == 1
        # Due, and mended: scored, and the failure is gone.
        make_due(Session, bad)
        monkeypatch.undo()
        assert scoring.score_pending(Session, None, 0.5) == 1
        assert flagged(Session) == set(ids) and failure(Session, bad) is None


def test_an_activity_is_given_up_on_after_the_last_attempt_and_a_moderator_can_have_it_tried_again(
        tmp_path, monkeypatch):
    with database_of_its_own("sqlite", tmp_path, "failures") as Session:
        bad, good = activities(Session, 2)
        failing_on(monkeypatch, {bad})
        waits = []
        for attempt in range(1, failures.MAX_ATTEMPTS + 1):
            make_due(Session, bad)
            scoring.score_pending(Session, None, 0.5)
            row = failure(Session, bad)
            assert row.attempts == attempt
            waits.append(None if row.retry_at is None else round((row.retry_at - row.failed_at).total_seconds()))
        assert waits == [*failures.RETRY_AFTER_S, None]
        with Session() as s:
            [(given, activity, athlete, retried_by)] = failures.given_up(s)
            assert given.activity_id == bad == activity.id and athlete.id == activity.user_id
            assert retried_by is None and given.retried_at is None
            assert failures.count_given_up(s) == 1
        assert scoring.score_pending(Session, None, 0.5) == 0 and failure(Session, bad).attempts == failures.MAX_ATTEMPTS
        with Session() as s, s.begin():
            moderator = create_user(s, "mod", password="mod-pass-123", role="moderator")
            assert not failures.try_again(s, good, moderator)  # never failed
            assert failures.try_again(s, bad, moderator)
        # One more attempt: failing again gives up again at once, and says who asked.
        assert scoring.score_pending(Session, None, 0.5) == 0
        assert failure(Session, bad).retry_at is None
        with Session() as s:
            [(given, _, _, retried_by)] = failures.given_up(s)
            assert retried_by.username == "mod" and given.retried_at is not None
        with Session() as s, s.begin():
            failures.try_again(s, bad)
        monkeypatch.undo()
        assert scoring.score_pending(Session, None, 0.5) == 1
        assert bad in flagged(Session) and failure(Session, bad) is None
        with Session() as s:
            assert failures.given_up(s) == []


def test_a_database_error_is_the_services_and_is_raised_without_writing_the_activity_down(tmp_path, monkeypatch):
    with database_of_its_own("sqlite", tmp_path, "failures") as Session:
        ids = activities(Session, 2)
        failing_on(monkeypatch, {ids[0]}, OperationalError("SELECT 1", {}, Exception("server closed the connection")))
        with pytest.raises(OperationalError):
            scoring.score_pending(Session, None, 0.5)
        assert failure(Session, ids[0]) is None
        monkeypatch.undo()
        assert scoring.score_pending(Session, None, 0.5) == 2


def test_an_activity_that_got_its_verdict_elsewhere_is_not_written_down(tmp_path):
    with database_of_its_own("sqlite", tmp_path, "failures") as Session:
        [a] = activities(Session, 1)
        assert scoring.score_pending(Session, None, 0.5) == 1
        assert failures.record(Session, a, RuntimeError("late")) is None
        assert failure(Session, a) is None


def test_a_long_error_is_cut_to_its_column():
    text = failures.describe(ValueError("x" * 1000))
    assert len(text) == failures.ERROR_CHARS and text.startswith("ValueError: xxx") and text.endswith("…")
    assert failures.describe(KeyError()) == "KeyError"


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_an_error_text_no_column_takes_is_written_down_all_the_same(kind, tmp_path, monkeypatch):
    """A NUL (PostgreSQL refuses it in text) and a lone surrogate (no encoding takes it) in
    the error: written down escaped, so the activity waits like any other."""
    with database_of_its_own(kind, tmp_path, "failures") as Session:
        ids = activities(Session, 2)
        failing_on(monkeypatch, {ids[0]}, ValueError("bad\x00byte \ud800 here"))
        assert scoring.score_pending(Session, None, 0.5) == 1
        assert failure(Session, ids[0]).error == "ValueError: bad\\x00byte \\ud800 here"


@pytest.mark.parametrize("error, service", [
    (OperationalError("SELECT 1", {}, Exception("server closed the connection")), True),
    (InterfaceError("SELECT 1", {}, Exception("connection already closed")), True),
    (ProgrammingError("SELECT 1", {}, Exception("relation does not exist")), True),
    (RedisConnectionError("Redis went away"), True),
    (DataError("INSERT", {}, Exception("invalid input syntax for type json")), False),
    (IntegrityError("INSERT", {}, Exception("violates check constraint")), False),
    (StatementError("could not bind", "INSERT", {}, TypeError("int64 is not JSON serializable")), False),
    (ValueError("no track"), False),
])
def test_the_services_errors_are_told_from_the_activitys(error, service):
    assert failures.service_error(error) is service


def test_a_round_where_every_activity_fails_charges_none_of_them(tmp_path, monkeypatch):
    """Every one of several activities failing, none scored: a fault of the service (a bad
    deploy, an archive out of reach), so none is written down, and all are tried again."""
    with database_of_its_own("sqlite", tmp_path, "failures") as Session:
        ids = activities(Session, failures.Round.SYSTEMIC)
        failing_on(monkeypatch, set(ids))
        assert scoring.score_pending(Session, None, 0.5) == 0
        assert [failure(Session, a) for a in ids] == [None] * len(ids)
        more = activities(Session, 1)  # one that scores: the others' errors are their own
        assert scoring.score_pending(Session, None, 0.5) == 1
        assert flagged(Session) == set(more) and all(failure(Session, a).attempts == 1 for a in ids)


def test_after_rounds_that_fail_as_a_whole_the_worker_waits_longer_each_time(tmp_path, monkeypatch):
    """A fault of the service fails every round the same way: the worker's loop puts the
    next round off, twice as long each time up to a limit, and tries at once again after a
    round that scores. A round where one activity of several fails puts nothing off."""
    with database_of_its_own("sqlite", tmp_path, "failures") as Session:
        ids = activities(Session, failures.Round.SYSTEMIC)
        broken = set(ids)
        tried = failing_on(monkeypatch, broken)
        pause, now = failures.Pause(), 1000.0
        waits = []
        for _ in range(8):
            before = len(tried)
            assert scoring.score_pending(Session, None, 0.5, pause=pause, now=now) == 0
            assert len(tried) - before == len(ids)  # each tried once in the round
            waits.append(pause.until - now)
            # Just before the end of the wait: no round, nothing tried.
            assert scoring.score_pending(Session, None, 0.5, pause=pause, now=pause.until - 1) == 0
            assert len(tried) - before == len(ids)
            now = pause.until
        first = failures.PAUSE_FIRST_S
        assert waits[:3] == [first, 2 * first, 4 * first]
        assert max(waits) == waits[-1] == failures.PAUSE_MAX_S
        assert [failure(Session, a) for a in ids] == [None] * len(ids)  # nobody charged
        # Mended: the next round scores them all, and the one after runs at once.
        broken.clear()
        assert scoring.score_pending(Session, None, 0.5, pause=pause, now=now) == len(ids)
        assert pause.rounds == 0 and not pause.waiting(now)
        # Failing as a whole again; an activity completed during the wait ends it at once:
        # it scores, which shows the others' faults to be their own.
        again = activities(Session, failures.Round.SYSTEMIC)
        broken.update(again)
        assert scoring.score_pending(Session, None, 0.5, pause=pause, now=now) == 0
        assert pause.waiting(now + 1)
        [fresh] = activities(Session, 1)
        assert scoring.score_pending(Session, None, 0.5, pause=pause, now=now + 1) == 1
        assert fresh in flagged(Session) and not pause.waiting(now + 1)
        assert all(failure(Session, a).attempts == 1 for a in again)
        # One bad activity among good ones is its own fault: written down, no pause.
        more = activities(Session, 3)
        broken.add(more[0])
        assert scoring.score_pending(Session, None, 0.5, pause=pause, now=now) == 2
        assert not pause.waiting(now) and failure(Session, more[0]).attempts == 1


def test_the_worker_round_reports_a_pause_and_scores_nothing_meanwhile(tmp_path, monkeypatch):
    from core.config import load_settings
    from core.jobs.scoring import score

    with database_of_its_own("sqlite", tmp_path, "failures") as Session:
        ids = activities(Session, failures.Round.SYSTEMIC)
        failing_on(monkeypatch, set(ids))
        pause, done = failures.Pause(), {}
        assert score(Session, load_settings(), None, done, pause=pause) == 0
        assert pause.waiting(time.monotonic()) and 0 < done["scoring_paused_s"] <= failures.PAUSE_FIRST_S
        monkeypatch.undo()  # mended, but the pause is not over yet
        done = {}
        assert score(Session, load_settings(), None, done, pause=pause) == 0
        assert 0 < done["scoring_paused_s"] <= failures.PAUSE_FIRST_S
        assert flagged(Session) == set()


def test_the_worker_passes_its_pause_to_scoring_and_counts_given_up_recomputations(tmp_path, monkeypatch):
    """Wired in the worker's round: after a round that failed as a whole, its next round
    tries nothing; the metric of given-up recomputations counts them."""
    from sqlalchemy import insert

    from core.activities.tables import Activity
    from core.config import load_settings
    from core.devices.tables import DeviceTrack
    from core.jobs import worker

    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    with database_of_its_own("sqlite", tmp_path, "failures") as Session:
        ids = activities(Session, failures.Round.SYSTEMIC)
        real = scoring.assess_stored
        tried = failing_on(monkeypatch, set(ids))
        jobs = worker.Jobs(load_settings(), Session, None)
        monkeypatch.setattr(jobs.keeper, "current", lambda now, done: None)
        jobs._activities(0.0, None, {})
        assert sorted(tried) == sorted(ids)
        done = {}
        jobs._activities(30.0, None, done)
        assert len(tried) == len(ids) and done.get("scoring_paused_s"), done
        monkeypatch.setattr(scoring, "assess_stored", real)
        with Session() as s, s.begin():  # one recomputation given up on
            s.execute(insert(DeviceTrack).values(
                activity_id=ids[0], user_id=s.get(Activity, ids[0]).user_id, token_id=_token(s, ids[0]),
                anchor_t=0.0, first_t=0.0, last_t=0.0, heard_at=0.0,
                recompute=True, recompute_attempts=failures.MAX_ATTEMPTS, recompute_error="ValueError: x"))
        jobs._activities(60.0, None, {})
        assert jobs.metrics.recompute_given_up._value.get() == 1
        assert jobs.metrics.given_up._value.get() == 0


def _token(s, activity_id: int) -> int:
    from core.accounts.tables import User
    from core.accounts.tokens import create_device_token
    from core.activities.tables import Activity

    row, _ = create_device_token(s, s.get(User, s.get(Activity, activity_id).user_id), "phone")
    s.flush()
    return row.id
