"""The simulator's phone records through the real HTTP service, as Traccar Client does."""

import argparse
import asyncio

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.activities.tables import Activity
from core.devices.tables import DeviceTrack
from core.storage.engine import make_sessionmaker
from core.storage.points import RoutePoint
from realtime.simulate import main_async
from tests.realtime.http.conftest import complete_all


def test_a_simulated_phone_records_an_activity(http, engine, db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKER_DATABASE_URL", db_url)
    http.svc.rate_per_s = http.svc.burst = 1e6  # the phone replays as fast as it can
    with Session(engine) as s:
        before = set(s.scalars(select(DeviceTrack.activity_id)))
    args = argparse.Namespace(server=None, devices=0, phones=1, http=http.url, speed=0.0, rounds=1,
                              drop_every=None, workdir=str(tmp_path), seed=5)
    asyncio.run(main_async(args))
    with Session(engine) as s:
        (activity_id,) = set(s.scalars(select(DeviceTrack.activity_id))) - before
        stored = s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == activity_id))
        track = s.get(DeviceTrack, activity_id)
        quiet_at = max(track.last_t, track.heard_at) + 3600
    assert stored > 100
    complete_all(make_sessionmaker(engine), 600.0, now=quiet_at)
    with Session(engine) as s:
        activity = s.get(Activity, activity_id)
        assert activity.status == "completed" and activity.point_count == stored and activity.distance_m > 500
