"""Anomaly scoring shared through a Redis Stream (``core.jobs.stream``), on a real Redis and
a database of its own: the relay puts each completed activity without a verdict in once; a
scorer process killed after taking entries leaves them pending, another claims and scores
them; every activity gets exactly one verdict, duplicates write nothing, and the group ends
with nothing pending. Two workers on one database share the stream's entries."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.anomaly.tables import ActivityFlag
from core.jobs.stream import RedisActivityStream, relay, score
from core.social.zone_attack import outing
from tests.conftest import database_of_its_own

ROOT = Path(__file__).resolve().parents[3]

TAKE_AND_HANG = """
import sys, time
from core.jobs.stream import RedisActivityStream
from core.social.leaderboards import connect_redis
stream = RedisActivityStream(connect_redis(sys.argv[1]), consumer="doomed")
print(" ".join(str(a) for _, a in stream.take(int(sys.argv[2]))), flush=True)
time.sleep(600)  # scoring them, as far as anyone can tell
"""


def activities(Session, n: int) -> list[int]:
    with Session() as s, s.begin():
        user = create_user(s, f"streamer{random.randrange(10**6)}")
        made = [record_track(s, user, outing(random.Random(k), 46.05, 14.5, 1.7e9 + 86400 * k), source="demo")
                for k in range(n)]
        return [a.id for a in made]


def verdicts(Session) -> dict[int, int]:
    with Session() as s:
        return dict(s.execute(select(ActivityFlag.activity_id, func.count()).group_by(ActivityFlag.activity_id)).all())


def test_a_killed_scorers_entries_are_claimed_and_each_activity_scored_once(tmp_path, redis_client):
    url = os.environ["TRACKER_TEST_REDIS_URL"]
    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 12)
        live = RedisActivityStream(redis_client, consumer="live")
        assert relay(Session, live) == 12
        assert relay(Session, live) == 0  # relayed already, not again before RELAY_AGAIN_S
        doomed = subprocess.Popen([sys.executable, "-c", TAKE_AND_HANG, url, "5"], cwd=ROOT, stdout=subprocess.PIPE,
                                  text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        try:
            taken = [int(a) for a in doomed.stdout.readline().split()]
            assert len(taken) == 5
            doomed.send_signal(signal.SIGKILL)
            doomed.wait(30)
        finally:
            doomed.kill()
            doomed.wait(30)
        pending = redis_client.xpending(live.stream, live.group)
        assert pending["pending"] == 5 and {c["name"] for c in pending["consumers"]} == {"doomed"}

        first = score(Session, live, None, 0.5, count=50, reclaim_idle_ms=60_000)  # not idle long enough yet
        assert (first["reclaimed"], first["written"]) == (0, 7)
        time.sleep(0.3)
        second = score(Session, live, None, 0.5, count=50, reclaim_idle_ms=200)
        assert (second["reclaimed"], second["written"]) == (5, 5)
        assert verdicts(Session) == dict.fromkeys(ids, 1)
        assert live.lag() == 0 and redis_client.xpending(live.stream, live.group)["pending"] == 0

        # Delivered again (a scorer that died after writing, before acknowledging; a relay
        # after a Redis restart): nothing is written twice, and the entries are acknowledged.
        live.publish(ids[:4] + [10**9])
        again = score(Session, live, None, 0.5, count=50)
        assert (again["taken"], again["written"]) == (5, 0)
        assert verdicts(Session) == dict.fromkeys(ids, 1) and live.lag() == 0
        redis_client.xadd(live.stream, {"activity": "not a number"})
        assert score(Session, live, None, 0.5)["taken"] == 1 and live.lag() == 0


def test_an_entry_lost_from_the_stream_is_relayed_again(tmp_path, redis_client, monkeypatch):
    import core.jobs.stream as stream_module

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 3)
        live = RedisActivityStream(redis_client, consumer="live")
        monkeypatch.setattr(stream_module, "RELAY_AGAIN_S", 1)
        assert relay(Session, live) == 3
        redis_client.xtrim(live.stream, maxlen=0)  # lost: a Redis restarted without its data
        assert score(Session, live, None, 0.5)["taken"] == 0
        time.sleep(1.5)
        assert relay(Session, live) == 3
        assert score(Session, live, None, 0.5)["written"] == 3
        assert verdicts(Session) == dict.fromkeys(ids, 1)


def test_two_workers_share_the_stream_and_score_each_activity_once(tmp_path, redis_client, monkeypatch):
    """Two workers' rounds (each its own locks and consumer) on one database: the holder of
    ``activities`` relays and scores with the model it keeps, the other with the saved one
    (none saved: it takes nothing); each takes a share, no activity is scored twice."""
    import numpy as np

    from core.anomaly.model import PopulationModel
    from core.anomaly.registry import MODEL_FILE, model_dir
    from core.anomaly.training import feature_rows
    from core.config import load_settings
    from core.jobs.locks import JobLocks
    from core.jobs.worker import Jobs
    from core.synthetic.tracks import generated

    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    settings = load_settings()
    rows = feature_rows([(t, t.sport) for t in generated(60)])
    model = PopulationModel.train({s: np.array(r) for s, r in rows.items()})
    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 8)
        engine = Session.kw["bind"]
        one = Jobs(settings, Session, redis_client, locks=JobLocks(engine))
        two = Jobs(settings, Session, redis_client, locks=JobLocks(engine))
        one.keeper.current = lambda now, done: model  # the model the holder keeps, without a day's training
        for jobs, name in ((one, "one"), (two, "two")):
            jobs.scorer.stream.consumer, jobs.scorer.take = name, 3
        try:
            first = one.round()
            assert first["relayed"] == 8 and first["scored"]["activities"] == 3
            assert "scored" not in two.round()  # no saved model yet: it leaves the entries to others
            model.save(model_dir(settings) / MODEL_FILE)
            assert two.round()["scored"]["activities"] == 3
            assert one.round()["scored"]["activities"] == 2
            assert "scored" not in two.round()
            assert verdicts(Session) == dict.fromkeys(ids, 1)
            assert one.scorer.stream.lag() == 0
            assert two.metrics.held.labels("activities")._value.get() == 0  # noqa: SLF001 - the gauge's value
        finally:
            one.locks.close()
            two.locks.close()


def test_a_redis_emptied_under_the_scorers_is_picked_up_again(tmp_path, redis_client):
    """Redis restarted without its data (or flushed): the next relay recreates the stream
    without the group, and the same scorer makes the group again instead of failing on
    every read until its process ends."""
    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 4)
        live = RedisActivityStream(redis_client, consumer="live")
        assert relay(Session, live) == 4 and score(Session, live, None, 0.5, count=2)["written"] == 2
        redis_client.flushdb()
        assert relay(Session, live) == 2
        assert score(Session, live, None, 0.5)["written"] == 2
        assert verdicts(Session) == dict.fromkeys(ids, 1) and live.lag() == 0


def test_the_lag_of_a_stream_redis_lost_is_read_again_without_an_error(redis_client):
    """A worker that only reads the lag (another one relays) after Redis lost the stream:
    the stream and its group are made again, empty, and the lag reads 0 instead of failing
    on "no such key" at every round until something is published."""
    stream = RedisActivityStream(redis_client, consumer="watcher")
    stream.publish([1, 2, 3])
    assert stream.lag() == 3
    redis_client.flushdb()
    assert stream.lag() == 0
    assert stream.publish([4]) == 1 and stream.lag() == 1


def test_an_activity_whose_scoring_fails_is_written_down_and_relayed_again_when_due(tmp_path, redis_client,
                                                                                    monkeypatch):
    """An activity's own error: acknowledged and written down (``core.anomaly.failures``),
    the others scored; relayed again once due and its relay mark gone, then scored."""
    import core.anomaly.scoring as scoring
    from core.anomaly.tables import ScoringFailure
    from core.jobs.stream import RELAYED

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 4)
        live = RedisActivityStream(redis_client, consumer="live")
        relay(Session, live)
        real = scoring.assess_stored

        def failing(s, activity, *args, **kwargs):
            if activity.id == ids[1]:
                raise RuntimeError("the track cannot be read")
            return real(s, activity, *args, **kwargs)

        monkeypatch.setattr(scoring, "assess_stored", failing)
        assert score(Session, live, None, 0.5)["written"] == 3
        assert redis_client.xpending(live.stream, live.group)["pending"] == 0
        with Session() as s:
            assert s.get(ScoringFailure, ids[1]).attempts == 1
        monkeypatch.setattr(scoring, "assess_stored", real)
        assert not redis_client.exists(f"{RELAYED}{ids[1]}")  # relayed again when due, not when the mark expires
        assert relay(Session, live) == 0  # not due yet
        with Session() as s, s.begin():
            s.get(ScoringFailure, ids[1]).retry_at = s.get(ScoringFailure, ids[1]).failed_at
        assert relay(Session, live) == 1
        assert score(Session, live, None, 0.5)["written"] == 1
        assert verdicts(Session) == dict.fromkeys(ids, 1) and live.lag() == 0
        with Session() as s:
            assert s.get(ScoringFailure, ids[1]) is None


def test_an_activity_whose_scoring_meets_a_database_error_stays_pending_and_the_others_are_scored(
        tmp_path, redis_client, monkeypatch):
    from sqlalchemy.exc import OperationalError

    import core.jobs.stream as stream_module

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 4)
        live = RedisActivityStream(redis_client, consumer="live")
        relay(Session, live)
        real = stream_module.score_one

        def failing(Session, activity_id, model, limit):
            if activity_id == ids[1]:
                raise OperationalError("SELECT 1", {}, Exception("database is locked"))
            return real(Session, activity_id, model, limit)

        monkeypatch.setattr(stream_module, "score_one", failing)
        assert score(Session, live, None, 0.5)["written"] == 3
        pending = redis_client.xpending(live.stream, live.group)
        assert pending["pending"] == 1
        monkeypatch.setattr(stream_module, "score_one", real)
        time.sleep(0.3)
        assert score(Session, live, None, 0.5, reclaim_idle_ms=200)["written"] == 1
        assert verdicts(Session) == dict.fromkeys(ids, 1) and live.lag() == 0


def test_a_batch_where_every_activity_fails_charges_none_and_is_relayed_again(tmp_path, redis_client, monkeypatch):
    """All of a batch failing, none scored: the service's fault, whatever the error; no
    activity is written down, and the relay puts them in again once their marks expire."""
    import core.anomaly.scoring as scoring
    from core.anomaly.tables import ScoringFailure
    from core.jobs.stream import RELAYED

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 3)
        live = RedisActivityStream(redis_client, consumer="live")
        relay(Session, live)

        def failing(s, activity, *args, **kwargs):
            raise FileNotFoundError("the archive is out of reach")

        monkeypatch.setattr(scoring, "assess_stored", failing)
        assert score(Session, live, None, 0.5)["written"] == 0
        with Session() as s:
            assert s.query(ScoringFailure).count() == 0
        assert relay(Session, live) == 0  # marked: not before RELAY_AGAIN_S
        monkeypatch.undo()
        redis_client.delete(*(f"{RELAYED}{a}" for a in ids))  # as when the marks expire
        assert relay(Session, live) == 3
        assert score(Session, live, None, 0.5)["written"] == 3
        assert verdicts(Session) == dict.fromkeys(ids, 1) and live.lag() == 0


def test_an_activity_with_several_entries_is_tried_once_and_charged_once(tmp_path, redis_client, monkeypatch):
    """Entries repeated (a relay again while one waited, a claim): one attempt per batch, and
    a later entry before the activity is due again does not try it."""
    import core.anomaly.scoring as scoring
    from core.anomaly.tables import ScoringFailure

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        bad, good = activities(Session, 2)
        live = RedisActivityStream(redis_client, consumer="live")
        live.publish([bad, bad, good, bad])
        real, tries = scoring.assess_stored, []

        def failing(s, activity, *args, **kwargs):
            if activity.id == bad:
                tries.append(bad)
                raise RuntimeError("the track cannot be read")
            return real(s, activity, *args, **kwargs)

        monkeypatch.setattr(scoring, "assess_stored", failing)
        assert score(Session, live, None, 0.5)["written"] == 1
        live.publish([bad])
        assert score(Session, live, None, 0.5)["written"] == 0
        assert tries == [bad] and live.lag() == 0
        with Session() as s:
            assert s.get(ScoringFailure, bad).attempts == 1


def _crop_range(Session, activity_id: int) -> tuple[int, float, float]:
    """(athlete, t0, t1): a stretch in the middle of the activity to crop."""
    from core.activities.tables import Activity
    from core.storage.points import stored_track

    with Session() as s:
        a = s.get(Activity, activity_id)
        t = stored_track(s, a).t
        return a.user_id, float(t[len(t) // 3]), float(t[len(t) // 3 + 20])


def test_a_crop_is_scored_by_the_streams_scorers_once(tmp_path, redis_client):
    """With the stream, a crop is written down and published, not scored in the request: the
    activity stands as it was (a confirmed one stays held) until a scorer writes the crop's
    verdict, once however often its entry comes; crops that come before it are scored
    together, and one that comes while a scorer works is scored by the next."""
    from core.accounts.users import create_user as new_user
    from core.activities.tables import Activity
    from core.anomaly.moderation import crop_activity, decide
    from core.anomaly.scoring import pending_crop, pending_ids
    from core.storage.points import count_points

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 2)
        live = RedisActivityStream(redis_client, consumer="live")
        relay(Session, live)
        assert score(Session, live, None, 0.5)["written"] == 2
        a = ids[0]
        with Session() as s, s.begin():
            mod = new_user(s, f"mod{random.randrange(10**6)}")
            mod.role = "moderator"
            s.get(ActivityFlag, a).status = "flagged"
            s.get(Activity, a).held = True
            decide(s, a, mod, "confirm", "a car")
        uid, t0, t1 = _crop_range(Session, a)
        with Session() as s:
            before = count_points(s, a)
            scored_at = s.get(ActivityFlag, a).scored_at

        flag = crop_activity(Session, a, uid, t0, t1, None, 0.5, stream=live)
        assert flag.status == "confirmed"
        with Session() as s:
            assert count_points(s, a) < before  # the crop itself is written at once
            assert s.get(ActivityFlag, a).status == "confirmed" and s.get(ActivityFlag, a).scored_at == scored_at
            assert s.get(Activity, a).held and len(pending_crop(s, a).crops) == 1
        assert a in pending_ids(Session, 10) and live.lag() == 1

        live.publish([a])  # delivered twice
        assert score(Session, live, None, 0.5)["written"] == 1
        with Session() as s:
            got = s.get(ActivityFlag, a)
            assert got.status == "cropped" and s.get(Activity, a).held and got.scored_at != scored_at
            assert len(got.crop["crops"]) == 1 and got.crop["status_before"] == "confirmed"
            assert pending_crop(s, a) is None
        live.publish([a])
        assert score(Session, live, None, 0.5)["written"] == 0 and live.lag() == 0
        assert a not in pending_ids(Session, 10)

        # Two crops before a scorer comes: one verdict for both, both in the history.
        b = ids[1]
        uid, t0, t1 = _crop_range(Session, b)
        crop_activity(Session, b, uid, t0, t1, None, 0.5, stream=live)
        crop_activity(Session, b, uid, t1 + 60, t1 + 120, None, 0.5, stream=live)
        with Session() as s:
            assert len(pending_crop(s, b).crops) == 2 and s.get(ActivityFlag, b).crop is None
        assert score(Session, live, None, 0.5)["written"] == 1
        with Session() as s:
            assert len(s.get(ActivityFlag, b).crop["crops"]) == 2 and pending_crop(s, b) is None
        assert verdicts(Session) == dict.fromkeys(ids, 1) and live.lag() == 0


def _scored_and_cropped(Session, redis_client):
    """One activity scored through the stream, then cropped with it: (activity, stream,
    athlete, end of the cropped range)."""
    from core.anomaly.moderation import crop_activity

    (a,) = activities(Session, 1)
    live = RedisActivityStream(redis_client, consumer="live")
    relay(Session, live)
    assert score(Session, live, None, 0.5)["written"] == 1
    uid, t0, t1 = _crop_range(Session, a)
    crop_activity(Session, a, uid, t0, t1, None, 0.5, stream=live)
    return a, live, uid, t1


def _once_while_scoring(monkeypatch, action):
    """Make the first scoring read run ``action`` once, after reading the track and before
    its verdict is written (another process acting meanwhile); the real reading, returned."""
    import core.anomaly.scoring as scoring

    real, done = scoring.assess_stored, []

    def reading(s, activity, *args, **kwargs):
        out = real(s, activity, *args, **kwargs)
        if not done:
            done.append(True)
            action()
        return out

    monkeypatch.setattr(scoring, "assess_stored", reading)
    return real


def test_a_crop_while_a_scorer_works_is_scored_by_the_next(tmp_path, redis_client, monkeypatch):
    """A crop landing between a scorer's reading and its writing: the scorer writes nothing
    (its score is of the track before that crop), and the crop's own entry scores both."""
    from core.anomaly.moderation import crop_activity
    from core.anomaly.scoring import pending_crop

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        a, live, uid, t1 = _scored_and_cropped(Session, redis_client)
        _once_while_scoring(monkeypatch, lambda: crop_activity(Session, a, uid, t1 + 60, t1 + 120, None, 0.5,
                                                               stream=live))
        assert score(Session, live, None, 0.5, count=1)["written"] == 0
        with Session() as s:
            assert len(pending_crop(s, a).crops) == 2 and s.get(ActivityFlag, a).crop is None
        assert score(Session, live, None, 0.5)["written"] == 1
        with Session() as s:
            assert len(s.get(ActivityFlag, a).crop["crops"]) == 2 and pending_crop(s, a) is None
        assert live.lag() == 0


def test_a_scorer_that_read_an_earlier_crop_writes_nothing_over_a_later_one(tmp_path, redis_client, monkeypatch):
    """Scorer A reads a crop; scorer B scores it meanwhile, and the athlete crops again: A's
    score (of the track before the second crop) is not written as the second crop's verdict,
    which the second crop's own entry writes."""
    import core.anomaly.scoring as scoring
    from core.anomaly.moderation import crop_activity
    from core.anomaly.scoring import pending_crop, score_one

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        a, live, uid, t1 = _scored_and_cropped(Session, redis_client)

        def meanwhile():
            assert score_one(Session, a, None, 0.5) == 1  # scorer B
            crop_activity(Session, a, uid, t1 + 60, t1 + 120, None, 0.5, stream=live)

        real = _once_while_scoring(monkeypatch, meanwhile)
        assert score_one(Session, a, None, 0.5) == 0  # scorer A
        monkeypatch.setattr(scoring, "assess_stored", real)
        with Session() as s:
            assert len(pending_crop(s, a).crops) == 1 and len(s.get(ActivityFlag, a).crop["crops"]) == 1
        assert score(Session, live, None, 0.5)["written"] == 1
        with Session() as s:
            assert len(s.get(ActivityFlag, a).crop["crops"]) == 2 and pending_crop(s, a) is None


def test_a_crop_whose_scoring_fails_waits_and_a_new_crop_or_a_moderator_meanwhile(tmp_path, redis_client,
                                                                                 monkeypatch):
    """A pending crop whose scoring fails is written down and waits like any activity (not
    relayed again at once); the athlete's next crop tries afresh; a moderator cannot decide
    on the activity while its crop waits for its new score."""
    import pytest

    import core.anomaly.scoring as scoring
    from core.accounts.tables import User
    from core.accounts.users import create_user as new_user
    from core.anomaly.failures import count_given_up, record
    from core.anomaly.flags import ModerationError
    from core.anomaly.moderation import crop_activity, decide
    from core.anomaly.scoring import pending_ids
    from core.anomaly.tables import ScoringFailure
    from core.storage.base import utcnow

    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        ids = activities(Session, 4)
        a = ids[0]
        live = RedisActivityStream(redis_client, consumer="live")
        relay(Session, live)
        assert score(Session, live, None, 0.5)["written"] == 4
        with Session() as s, s.begin():
            s.get(ActivityFlag, a).status = "flagged"
        uid, t0, t1 = _crop_range(Session, a)
        crop_activity(Session, a, uid, t0, t1, None, 0.5, stream=live)
        with Session() as s, s.begin():
            mod = new_user(s, f"mod{random.randrange(10**6)}")
            mod.role = "moderator"
            with pytest.raises(ModerationError, match="being scored again"):
                decide(s, a, mod, "dismiss")
            mod_id = mod.id
        real = scoring.assess_stored

        def failing(s, activity, *args, **kwargs):
            if activity.id == a:
                raise RuntimeError("the track cannot be read")
            return real(s, activity, *args, **kwargs)

        monkeypatch.setattr(scoring, "assess_stored", failing)
        live.publish(ids[1:])  # with others: one failure in a round is the activity's own
        score(Session, live, None, 0.5)
        with Session() as s:
            assert s.get(ScoringFailure, a).attempts == 1
        assert a not in pending_ids(Session, 10) and relay(Session, live) == 0  # waits until due
        with Session() as s, s.begin():
            s.get(ScoringFailure, a).retry_at = None  # given up on
        with Session() as s:
            assert count_given_up(s) == 1  # shown to the moderators
        with Session() as s, s.begin():
            decide(s, a, s.get(User, mod_id), "confirm")  # given up on: the moderator decides without it
        monkeypatch.setattr(scoring, "assess_stored", real)
        round_began = utcnow()
        crop_activity(Session, a, uid, t1 + 60, t1 + 120, None, 0.5, stream=live)
        with Session() as s:
            assert s.get(ScoringFailure, a) is None  # the new track is tried afresh
        # A scorer's round that began before this crop, failing on the track before it, does
        # not charge the new crop with its failure.
        assert record(Session, a, RuntimeError("the old track"), tried_at=round_began) is None
        assert a in pending_ids(Session, 10)
        assert score(Session, live, None, 0.5)["written"] == 1
        with Session() as s:
            flag = s.get(ActivityFlag, a)
            assert len(flag.crop["crops"]) == 2 and count_given_up(s) == 0
            assert flag.status == "cropped"  # confirmed meanwhile: back to the moderators


def test_the_lag_still_counts_the_unread_entries_after_some_were_deleted(redis_client):
    """Redis gives no lag once entries past what the group read were deleted (by hand): the
    figure the operators' alert reads must not fall to the pending entries alone."""
    stream = RedisActivityStream(redis_client, consumer="one", stream="tracker:test:lagging", group="g")
    try:
        stream.publish([1, 2, 3, 4, 5])
        taken = stream.take(1)
        assert stream.lag() == 5
        unread = [entry_id for entry_id, _ in redis_client.xrange(stream.stream)][1:]
        redis_client.xdel(stream.stream, unread[1])
        assert 4 <= stream.lag() <= 5  # 3 unread and 1 pending; the deleted one may count too
        stream.ack([entry_id for entry_id, _ in taken])
        assert 3 <= stream.lag() <= 4
    finally:
        redis_client.delete(stream.stream)


def test_entries_that_name_no_activity_are_acknowledged_with_a_warning_each(tmp_path, redis_client, caplog):
    """Entries written by someone else: each refused with one warning naming it and why, and
    acknowledged (the group is not blocked); a well-formed one among them is scored."""
    import logging

    from core.jobs.stream import GROUP, STREAM

    bad = [{"activity": "abc"}, {"foo": "bar"}, {"activity": "99999999999999999999"}, {"activity": "-3"},
           {"activity": "1e3"}, {"activity": "\u0661\u0662"}, {"activity": "0"}, {"activity": "9" * 5000}]
    with database_of_its_own("sqlite", tmp_path, "stream") as Session:
        [good] = activities(Session, 1)
        live = RedisActivityStream(redis_client, consumer="live")
        live.publish([])  # the group, before the entries
        refused = [redis_client.xadd(STREAM, fields) for fields in bad]
        redis_client.xadd(STREAM, {"activity": str(good)})
        with caplog.at_level(logging.WARNING, logger="core.jobs.stream"):
            out = score(Session, live, None, 0.5)
        assert out["taken"] == len(bad) + 1 and out["written"] == 1
        assert verdicts(Session) == {good: 1}
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == len(bad), [r.getMessage() for r in warnings]
        for entry_id, record in zip(refused, warnings):
            assert entry_id in record.getMessage() and "refused" in record.getMessage()
            assert record.exc_info is None and len(record.getMessage()) < 200
        assert redis_client.xpending(STREAM, GROUP)["pending"] == 0


def test_an_activity_id_is_read_strictly():
    from core.jobs.stream import MAX_ID, activity_of

    assert activity_of({"activity": "12"}) == (12, "")
    assert activity_of({"activity": b"7"}) == (7, "")
    assert activity_of({"activity": str(MAX_ID)}) == (MAX_ID, "")
    for raw in ("abc", "-3", "1e3", "\u0661\u0662", " 12", "", "0", str(MAX_ID + 1), "1.0", "+5"):
        activity_id, why = activity_of({"activity": raw})
        assert activity_id is None and why, raw
    assert activity_of({"foo": "bar"}) == (None, "it has no activity field")
