"""Badge tables: the badges athletes earned (and those withdrawn, with why), and what the
awarding job last saw of each activity."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from core.storage.base import Base, UTCDateTime, utcnow

BADGE_CODE_MAX_CHARS = 40


class BadgeAward(Base):
    """A badge an athlete earned: once per athlete and badge. A withdrawn award keeps its row
    (``withdrawn_at`` and the reason), and is reinstated in place if it is earned again."""

    __tablename__ = "badge_awards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(BADGE_CODE_MAX_CHARS))
    # The activity that earned it (for a total, the one that crossed the mark); NULL once
    # that activity is deleted, which the job then notices.
    activity_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("activities.id", ondelete="SET NULL"))
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the earning activity's start
    awarded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)
    withdrawn_activity_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))

    __table_args__ = (
        Index("uq_badge_awards_user_code", "user_id", "code", unique=True),
        Index("ix_badge_awards_activity", "activity_id"),
        Index("ix_badge_awards_withdrawn", "withdrawn_activity_id"),
    )


class BadgeActivity(Base):
    """What the awarding job last saw of a completed activity: a difference from the
    activity's row (held, points, distance, start) or a row whose activity is gone makes
    its athlete's badges due for a recount. No foreign key to ``activities`` on purpose:
    a deleted activity leaves its row behind, and that is how the deletion is noticed."""

    __tablename__ = "badge_activities"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    points: Mapped[int] = mapped_column(Integer, default=0)
    distance_m: Mapped[float | None] = mapped_column(Float)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

