"""Helpers of the storage tiers' tests."""

from __future__ import annotations

import uuid
from datetime import timedelta

import numpy as np

from core.accounts.users import create_user
from core.activities.imports import record_track
from core.storage.base import utcnow
from core.tracks.track import track_from_rows

T0 = 1_700_000_000.0


def synthetic(n: int = 600, hr: float | None = 140.0, acc: float = 5.0, t0: float = T0):
    rows = [(t0 + i, 46.0 + i * 2e-5, 14.0 + i * 1e-5, 300.0 + (i % 50) * 0.137, acc,
             hr, 80.0) for i in range(n)]
    return track_from_rows(rows, sport="run")


def new_activity(Session, track, days_ago: float = 400.0, user_id: int | None = None) -> int:
    from core.accounts.tables import User

    with Session() as s, s.begin():
        user = s.get(User, user_id) if user_id else create_user(s, f"r{uuid.uuid4().hex[:10]}", "Rider")
        a = record_track(s, user, track, sport="run", title="Old run", source="demo")
        a.start_time = utcnow() - timedelta(days=days_ago)
        return a.id


def user_of(Session, activity_id: int) -> int:
    from core.activities.tables import Activity

    with Session() as s:
        return s.get(Activity, activity_id).user_id


def hot_count(Session, activity_id: int) -> int:
    from sqlalchemy import func, select

    from core.storage.points import RoutePoint

    with Session() as s:
        return int(s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == activity_id)))


__all__ = ["T0", "synthetic", "new_activity", "user_of", "hot_count", "np"]
