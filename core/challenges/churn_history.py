"""Athletes' daily history as the drop-off model reads it: counted activities, visits,
sign-ins, kudos and comments per athlete and UTC day, as arrays. The database path reads it
with one aggregated query per table (and direction) for each chunk of athletes, in a
read-only session; the generated populations give the same arrays directly."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import numpy as np
from sqlalchemy import false, func, select
from sqlalchemy.orm import Session

from core.activities.tables import Activity
from core.challenges.tables import EngagementDay
from core.social.tables import Comment, Kudos

CHUNK_USERS = 500
COUNTED = "completed"


@dataclass(frozen=True)
class Daily:
    """Counts shaped (athletes, days), day 0 being the first day read; ``first_active`` is
    each athlete's first counted activity as a day index (negative: before the arrays; NaN:
    none known), so tenure is right without reading years of days."""

    activities: np.ndarray
    visits: np.ndarray
    sign_ins: np.ndarray
    kudos_given: np.ndarray
    kudos_received: np.ndarray
    comments_given: np.ndarray
    comments_received: np.ndarray
    first_active: np.ndarray

    @classmethod
    def of(cls, population) -> Daily:
        """A generated population's arrays (``core.challenges.habits.Population``)."""
        n = population.activities.shape[0]
        return cls(population.activities, population.visits, population.sign_ins, population.kudos_given,
                   population.kudos_received, population.comments_given, population.comments_received,
                   np.full(n, np.nan))

    def take(self, rows: np.ndarray) -> Daily:
        """Only these athletes (row indices)."""
        return Daily(*(getattr(self, name)[rows] for name in FIELDS), self.first_active[rows])


FIELDS = ("activities", "visits", "sign_ins", "kudos_given", "kudos_received", "comments_given",
          "comments_received")


def read_daily(Session, user_ids: list[int], first_day: date, end_day: date) -> Daily:
    """The athletes' days from ``first_day`` to the day before ``end_day`` (UTC), in the
    order of ``user_ids``; nothing at or after ``end_day`` is read."""
    days = (end_day - first_day).days
    if days <= 0:
        raise ValueError("end_day must come after first_day")
    n = len(user_ids)
    arrays = {name: np.zeros((n, days), dtype=np.int32) for name in FIELDS}
    first_active = np.full(n, np.nan)
    row_of = {uid: k for k, uid in enumerate(user_ids)}
    start = datetime.combine(first_day, time(), tzinfo=UTC)
    end = datetime.combine(end_day, time(), tzinfo=UTC)
    with Session() as s:
        for k in range(0, n, CHUNK_USERS):
            chunk = list(user_ids[k:k + CHUNK_USERS])
            for name, rows in _counts(s, chunk, start, end, first_day, end_day).items():
                for uid, day, count in rows:
                    index = (_as_date(day) - first_day).days
                    if 0 <= index < days:
                        arrays[name][row_of[uid], index] += int(count or 0)
            for uid, first in _first_activities(s, chunk, end):
                first_active[row_of[uid]] = (_as_date(first) - first_day).days
        s.rollback()
    return Daily(**arrays, first_active=first_active)


def _counts(s: Session, chunk: list[int], start: datetime, end: datetime, first_day: date, end_day: date):
    """(user, day, count) rows per signal for one chunk of athletes; kudos and comments on
    one's own activities are neither given nor received."""
    counted = (Activity.status == COUNTED, Activity.held == false())
    act_day = func.date(Activity.start_time)
    kudos_day = func.date(Kudos.created_at)
    comment_day = func.date(Comment.created_at)
    out = {"activities": s.execute(
        select(Activity.user_id, act_day, func.count())
        .where(Activity.user_id.in_(chunk), *counted, Activity.start_time >= start, Activity.start_time < end)
        .group_by(Activity.user_id, act_day)).all()}
    engagement = s.execute(
        select(EngagementDay.user_id, EngagementDay.day, EngagementDay.visits, EngagementDay.sign_ins)
        .where(EngagementDay.user_id.in_(chunk), EngagementDay.day >= first_day,
               EngagementDay.day < end_day)).all()
    out["visits"] = [(u, d, v) for u, d, v, _ in engagement]
    out["sign_ins"] = [(u, d, si) for u, d, _, si in engagement]
    out["kudos_given"] = s.execute(
        select(Kudos.user_id, kudos_day, func.count())
        .join(Activity, Activity.id == Kudos.activity_id)
        .where(Kudos.user_id.in_(chunk), Kudos.user_id != Activity.user_id,
               Kudos.created_at >= start, Kudos.created_at < end)
        .group_by(Kudos.user_id, kudos_day)).all()
    out["kudos_received"] = s.execute(
        select(Activity.user_id, kudos_day, func.count())
        .join(Activity, Activity.id == Kudos.activity_id)
        .where(Activity.user_id.in_(chunk), Kudos.user_id != Activity.user_id,
               Kudos.created_at >= start, Kudos.created_at < end)
        .group_by(Activity.user_id, kudos_day)).all()
    out["comments_given"] = s.execute(
        select(Comment.user_id, comment_day, func.count())
        .join(Activity, Activity.id == Comment.activity_id)
        .where(Comment.user_id.in_(chunk), Comment.user_id != Activity.user_id,
               Comment.created_at >= start, Comment.created_at < end)
        .group_by(Comment.user_id, comment_day)).all()
    out["comments_received"] = s.execute(
        select(Activity.user_id, comment_day, func.count())
        .join(Activity, Activity.id == Comment.activity_id)
        .where(Activity.user_id.in_(chunk), Comment.user_id != Activity.user_id,
               Comment.created_at >= start, Comment.created_at < end)
        .group_by(Activity.user_id, comment_day)).all()
    return out


def _first_activities(s: Session, chunk: list[int], end: datetime):
    """(user, first counted activity's start) before ``end``."""
    return s.execute(
        select(Activity.user_id, func.min(Activity.start_time))
        .where(Activity.user_id.in_(chunk), Activity.status == COUNTED, Activity.held == false(),
               Activity.start_time < end)
        .group_by(Activity.user_id)).all()


def athletes_with_activities(Session, since: datetime, end: datetime) -> list[int]:
    """Athletes with a counted activity in [since, end), in id order."""
    with Session() as s:
        ids = s.scalars(select(Activity.user_id).distinct()
                        .where(Activity.status == COUNTED, Activity.held == false(),
                               Activity.start_time >= since, Activity.start_time < end)
                        .order_by(Activity.user_id)).all()
        s.rollback()
    return list(ids)


def _as_date(value) -> date:
    """SQLite's date() gives text, PostgreSQL's a date; timestamps are UTC."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is None else value.astimezone(UTC)).date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
