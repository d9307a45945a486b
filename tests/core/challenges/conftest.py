"""A database of the module's own for the job tests (the jobs read every athlete's
activities), and helpers that leave activities as scoring and route matching would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from core.accounts.users import create_user, user_by_name
from core.activities.tables import Activity
from core.anomaly.flags import is_held
from core.anomaly.tables import ActivityFlag
from core.challenges.awards import award_pending
from core.challenges.tables import BadgeAward
from core.routes.tables import RouteActivity
from core.social.follows import follow
from tests.conftest import database_of_its_own

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def Sessions(request, tmp_path_factory):
    with database_of_its_own(request.param, tmp_path_factory.mktemp("challenges"), "challenges") as Sessions:
        yield Sessions


def athlete(Sessions, role="athlete") -> str:
    name = f"a{uuid.uuid4().hex[:10]}"
    with Sessions() as s, s.begin():
        create_user(s, name, role=role)
    return name


def add(Sessions, username, km, when=T0, sport="run", flag="clear", routed=True, climb=0.0) -> int:
    """A completed activity as scoring (``flag``: its status, None for not yet scored) and
    the route matcher (``routed``) left it."""
    with Sessions() as s, s.begin():
        user = user_by_name(s, username)
        a = Activity(user_id=user.id, sport=sport, status="completed", title="t", visibility="public",
                     source="demo", start_time=when, completed_at=when, distance_m=km * 1000.0,
                     shown_distance_m=km * 1000.0,  # as for an athlete who hides nothing
                     moving_time_s=km * 330.0, elevation_gain_m=climb, point_count=int(km * 100),
                     held=is_held(flag))
        s.add(a)
        s.flush()
        if flag is not None:
            s.add(ActivityFlag(activity_id=a.id, user_id=user.id, sport=sport, score=0.5 if a.held else 0.1,
                               status=flag, reasons=[], codes="", verdict={}, features={}))
        if routed:
            s.add(RouteActivity(activity_id=a.id, user_id=user.id, visibility="public", held=a.held,
                                points=a.point_count))
        return a.id


def run_job(Sessions, now: datetime | None = None) -> dict:
    """The recount until nobody is due (``now``: the clock it goes by, for tests of dated weeks)."""
    total = {"athletes": 0, "awarded": 0, "withdrawn": 0, "challenges": 0}
    for _ in range(50):
        done = award_pending(Sessions, limit=5, now=now)
        if not done:
            return total
        assert "failed" not in done, "an athlete's recount failed (see the log)"
        for k in total:
            total[k] += done[k]
    raise AssertionError("the badge job never ran dry")


def awards(Sessions, username) -> dict[str, BadgeAward]:
    from sqlalchemy import select

    with Sessions() as s:
        uid = user_by_name(s, username).id
        return {a.code: a for a in s.scalars(select(BadgeAward).where(BadgeAward.user_id == uid))}


def active(Sessions, username) -> set[str]:
    return {c for c, a in awards(Sessions, username).items() if a.withdrawn_at is None}


def friends(Sessions, *names) -> list[int]:
    """The athletes ``names`` following each other, their ids."""
    with Sessions() as s, s.begin():
        users = [user_by_name(s, n) for n in names]
        for a in users:
            for b in users:
                if a.id != b.id:
                    follow(s, a, b)
        return [u.id for u in users]
