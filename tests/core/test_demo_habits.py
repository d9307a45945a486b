"""The demo's athletes train when their habits say: the regulars keep every session of their
routine, everyone has some activities, and visits and sign-ins are recorded per day, so the
weekly drop-off scoring has a believable history to learn from."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import func, select

from core.activities.tables import Activity
from core.challenges.tables import EngagementDay
from core.synthetic.demo import HABIT_WEEKS, build_demo
from tests.conftest import database_of_its_own


def test_the_demo_follows_habits_and_records_visits(tmp_path):
    with database_of_its_own("sqlite", tmp_path, "demo") as Sessions:
        with Sessions() as s, s.begin():
            report = build_demo(s, users=40, activities=400, seed=3, shared_tracks=None, progress=False)
        with Sessions() as s:
            starts = s.execute(select(Activity.user_id, Activity.start_time)).all()
            visits = s.execute(select(func.count(), func.sum(EngagementDay.visits),
                                      func.sum(EngagementDay.sign_ins))).one()
    assert report.activities == 403 and len(starts) == 403
    per_athlete = Counter(uid for uid, _ in starts)
    assert len(per_athlete) >= 30  # spread over nearly everyone
    assert max(per_athlete.values()) >= 3 * sorted(per_athlete.values())[len(per_athlete) // 2]  # regulars stand out
    span = max(t for _, t in starts) - min(t for _, t in starts)
    assert 8 * 7 <= span.days <= HABIT_WEEKS * 7
    days, total_visits, sign_ins = visits
    assert days > 40 * 7 and total_visits >= days and 0 < sign_ins < total_visits
