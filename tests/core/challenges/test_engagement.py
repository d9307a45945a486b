"""Engagement signals: a day's sign-ins and visits add up, per athlete and day, on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import date

from core.accounts.users import create_user
from core.challenges.engagement import record
from core.challenges.tables import EngagementDay


def test_a_days_sign_ins_and_visits_add_up(session):
    a, b = create_user(session, "engaged_a"), create_user(session, "engaged_b")
    day = date(2026, 12, 1)
    record(session, a.id, sign_ins=1, visits=1, day=day)
    record(session, a.id, visits=1, day=day)
    record(session, a.id, visits=1, day=date(2026, 12, 2))
    record(session, b.id, sign_ins=1, day=day)
    session.expire_all()
    assert (session.get(EngagementDay, (a.id, day)).sign_ins, session.get(EngagementDay, (a.id, day)).visits) == (1, 2)
    assert session.get(EngagementDay, (a.id, date(2026, 12, 2))).visits == 1
    assert (session.get(EngagementDay, (b.id, day)).sign_ins, session.get(EngagementDay, (b.id, day)).visits) == (1, 0)


def test_a_signal_that_cannot_be_recorded_is_logged_not_raised(tmp_path, caplog):
    from sqlalchemy.orm import sessionmaker

    from core.challenges.engagement import record_safely
    from core.storage.engine import make_engine
    from core.storage.schema import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'signals.db'}")
    migrate(engine)
    Session = sessionmaker(engine)
    assert record_safely(Session, 999_999, visits=1) is False  # no such athlete: the foreign key refuses it
    assert "engagement signal not recorded" in caplog.text
    engine.dispose()
