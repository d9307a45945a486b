"""Late fixes shared through a Redis Stream (``core.jobs.stream.relay_late``): with Redis,
the holder of the ``activities`` jobs relays each completed activity a late fix landed in,
and the workers' consumers recompute it (and score it again where its verdict allows) once;
one that more fixes land in while it is recomputed goes back into the stream; a worker whose
Redis fails recomputes in its own round."""

from __future__ import annotations

import pytest

import core.jobs.devices as devices
from core.activities.tables import Activity
from core.devices.fixes import Fix, store_fixes
from core.devices.tables import DeviceTrack
from core.jobs.stream import LATE_STREAM, RELAYED_LATE, RedisActivityStream, recompute, relay_late
from tests.core.devices.conftest import failing_summaries, late_activities

IDLE = 600.0
T0 = 1_750_000_000.0
NOW = T0 + 86_400.0


def stale(Sessions, ids) -> dict[int, bool]:
    with Sessions() as s:
        return {a: s.get(DeviceTrack, a).recompute for a in ids}


def test_late_fixes_are_relayed_once_and_recomputed_once_by_two_consumers(Sessions, make_device, redis_client):
    ids = late_activities(Sessions, make_device, 4)
    one = RedisActivityStream(redis_client, consumer="one", stream=LATE_STREAM)
    two = RedisActivityStream(redis_client, consumer="two", stream=LATE_STREAM)
    assert relay_late(Sessions, one) == 4
    assert relay_late(Sessions, one) == 0  # relayed already
    first = recompute(Sessions, one, None, 0.7, count=2)
    second = recompute(Sessions, two, None, 0.7, count=10)
    assert (first["taken"], second["taken"]) == (2, 2)
    assert first["written"] + second["written"] == 4
    assert stale(Sessions, ids) == dict.fromkeys(ids, False) and one.lag() == 0
    with Sessions() as s:
        assert [s.get(Activity, a).point_count for a in ids] == [60] * 4
    # Delivered twice (a consumer that died after its work, before its ack): nothing more.
    one.publish(ids[:1])
    assert recompute(Sessions, two, None, 0.7)["written"] == 0
    # Recomputed, it lost its relay mark: a fix landing next is relayed at once.
    assert not redis_client.exists(*(f"{RELAYED_LATE}{a}" for a in ids))


def test_an_activity_more_fixes_land_in_while_it_is_recomputed_goes_back_into_the_stream(
        Sessions, make_device, redis_client, monkeypatch):
    phones = []
    [a] = late_activities(Sessions, make_device, 1, phones)
    live = RedisActivityStream(redis_client, consumer="live", stream=LATE_STREAM)
    relay_late(Sessions, live)
    real = devices.summarise_activity
    landed = []

    def summarise_activity(s, activity):
        summary = real(s, activity)
        if not landed:  # a fix lands between the summary and its write
            landed.extend(store_fixes(Sessions, [(phones[0], Fix(T0 + 60 * 5.0, 45.0060, 7.0))],
                                      now=NOW + 3 * IDLE, idle_s=IDLE))
        return summary

    monkeypatch.setattr(devices, "summarise_activity", summarise_activity)
    assert recompute(Sessions, live, None, 0.7)["written"] == 0
    assert [(r.activity_id, r.new) for r in landed] == [(a, True)] and stale(Sessions, [a]) == {a: True}
    monkeypatch.undo()
    assert recompute(Sessions, live, None, 0.7)["written"] == 1  # taken again from the stream
    assert stale(Sessions, [a]) == {a: False} and live.lag() == 0
    with Sessions() as s:
        assert s.get(Activity, a).point_count == 61


@pytest.mark.parametrize("redis_up", [True, False])
def test_the_worker_recomputes_late_fixes_through_the_stream_or_in_its_round_without_redis(
        Sessions, make_device, redis_client, monkeypatch, tmp_path, redis_up):
    from redis.exceptions import ConnectionError as RedisConnectionError

    from core.config import load_settings
    from core.jobs import worker

    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path / "data"))
    ids = late_activities(Sessions, make_device, 3)
    jobs = worker.Jobs(load_settings(), Sessions, redis_client)
    monkeypatch.setattr(jobs.keeper, "current", lambda now, done: None)
    if not redis_up:
        def down(*args, **kwargs):
            raise RedisConnectionError("Redis went away")

        monkeypatch.setattr(worker, "relay", down)
    done = {}
    jobs._activities(0.0, NOW + 4 * IDLE, done)
    assert stale(Sessions, ids) == dict.fromkeys(ids, False), done
    if redis_up:
        assert done["relayed_late"] == 3 and done["recomputed_late"]["activities"] == 3
    else:
        assert done["late"]["recomputed"] == 3


def test_a_recomputation_that_fails_on_the_stream_is_written_down_and_relayed_again_when_due(
        Sessions, make_device, redis_client, monkeypatch):
    """Its entry is acknowledged (nothing piles up), the failure is written down with its
    error, its relay mark goes, and it is relayed again only once due; mended, it is
    recomputed. The others of the batch are recomputed meanwhile."""
    from datetime import timedelta

    from sqlalchemy import update

    from core.storage.base import utcnow

    bad, good = late_activities(Sessions, make_device, 2)
    live = RedisActivityStream(redis_client, consumer="live", stream=LATE_STREAM)
    assert relay_late(Sessions, live) == 2
    broken = failing_summaries(monkeypatch, {bad})
    out = recompute(Sessions, live, None, 0.7)
    assert (out["taken"], out["written"]) == (2, 1) and live.lag() == 0
    assert stale(Sessions, [bad, good]) == {bad: True, good: False}
    with Sessions() as s:
        row = s.get(DeviceTrack, bad)
        assert row.recompute_attempts == 1 and row.recompute_error == "ValueError: no track to summarise"
    assert not redis_client.exists(f"{RELAYED_LATE}{bad}")
    assert relay_late(Sessions, live) == 0  # not due yet
    with Sessions() as s, s.begin():
        s.execute(update(DeviceTrack).where(DeviceTrack.activity_id == bad)
                  .values(recompute_retry_at=utcnow() - timedelta(seconds=1)))
    broken.clear()
    assert relay_late(Sessions, live) == 1
    assert recompute(Sessions, live, None, 0.7)["written"] == 1
    with Sessions() as s:
        row = s.get(DeviceTrack, bad)
        assert not row.recompute and row.recompute_attempts == 0 and s.get(Activity, bad).point_count == 60


def test_late_fixes_in_an_activity_whose_crop_waits_for_its_score_renew_the_crops_version(Sessions, make_device):
    """A late fix landing while a crop waits for its new score: the recomputation leaves the
    score to the crop's scorer and draws the crop a new version, so a scorer that read the
    track before the fix writes nothing and the crop is scored again on the whole track."""
    from core.anomaly.scoring import pending_crop, score_activity, score_one
    from core.anomaly.tables import ActivityFlag, PendingCrop

    (a,) = late_activities(Sessions, make_device, 1)
    with Sessions() as s, s.begin():
        activity = s.get(Activity, a)
        score_activity(s, activity, None)
        s.add(PendingCrop(activity_id=a, user_id=activity.user_id, crops=[{"at": 1.0, "before": {}, "after": {}}],
                          version="before"))
        scored_at = s.get(ActivityFlag, a).scored_at
    assert devices.recompute_late(Sessions, None, 0.7)["recomputed"] == 1
    with Sessions() as s:
        assert pending_crop(s, a).version != "before"
        assert s.get(ActivityFlag, a).scored_at == scored_at  # not scored by the recomputation
    from core.anomaly import scoring

    with Sessions() as s:
        result = scoring.assess_stored(s, s.get(Activity, a), None, 0.7)
    assert scoring._write_if_pending(Sessions, a, result, "before") == 0  # read before the fix
    assert score_one(Sessions, a, None, 0.7) == 1
    with Sessions() as s:
        assert pending_crop(s, a) is None
