"""Engagement signals: sign-ins and dashboard visits per athlete and day (UTC), counted with
one upsert each, so recording them costs a page no more than a few milliseconds."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, sessionmaker

from core.challenges.tables import EngagementDay

log = logging.getLogger(__name__)


def record(s: Session, user_id: int, sign_ins: int = 0, visits: int = 0, day: date | None = None) -> None:
    """Add sign-ins and visits to the athlete's day, in the caller's transaction."""
    day = day or datetime.now(UTC).date()
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = insert(EngagementDay).values(user_id=user_id, day=day, sign_ins=sign_ins, visits=visits)
    s.execute(stmt.on_conflict_do_update(
        index_elements=["user_id", "day"],
        set_={"sign_ins": EngagementDay.sign_ins + stmt.excluded.sign_ins,
              "visits": EngagementDay.visits + stmt.excluded.visits}))


def record_safely(Session: sessionmaker[Session], user_id: int, sign_ins: int = 0, visits: int = 0,
                  day: date | None = None) -> bool:
    """``record`` in a short transaction of its own, as a signal: a failure is logged, never
    raised (a page or a sign-in must not fail for it). True when it was recorded."""
    try:
        with Session() as s, s.begin():
            record(s, user_id, sign_ins=sign_ins, visits=visits, day=day)
        return True
    except Exception:  # noqa: BLE001 - a lost signal is better than a failed page
        log.exception("engagement signal not recorded", extra={"user_id": user_id})
        return False
