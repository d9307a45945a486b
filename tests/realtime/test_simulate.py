"""The simulator drives real devices against a real server, network drops included."""

import argparse
import asyncio

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.activities.tables import Activity
from core.storage.points import RoutePoint
from realtime.simulate import main_async


def test_simulated_devices_record_and_complete_activities(ingest, engine, db_url, tmp_path, monkeypatch):
    """Three devices replay a track each as fast as possible, dropping the network now and then."""
    monkeypatch.setenv("TRACKER_DATABASE_URL", db_url)
    with Session(engine) as s:  # the database is shared with other tests: only what this one made counts
        before = s.scalar(select(func.max(Activity.id))) or 0
    args = argparse.Namespace(server=ingest.url, devices=3, phones=0, http=None, speed=0.0, rounds=1,
                              drop_every=0.05, workdir=str(tmp_path), seed=3)
    asyncio.run(main_async(args))
    with Session(engine) as s:
        done = s.scalars(select(Activity).where(Activity.id > before, Activity.status == "completed",
                                                Activity.source == "device")).all()
        assert len(done) >= 3
        for a in done:
            stored = s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == a.id))
            assert stored == a.point_count > 0
            assert a.distance_m > 0
