"""Badge tables: the badges athletes earned (and those withdrawn, with why), and what the
awarding job last saw of each activity."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
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
    activity_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
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
    activity's row (held, points, distance, start), its flag or its route, or a row whose
    activity is gone, makes its athlete's badges due for a recount, and so does the time an
    activity dated ahead starts to count. No foreign key to ``activities`` on purpose:
    a deleted activity leaves its row behind, and that is how the deletion is noticed."""

    __tablename__ = "badge_activities"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    flag: Mapped[str | None] = mapped_column(String(16))  # the anomaly flag's status then
    points: Mapped[int] = mapped_column(Integer, default=0)  # -1: recount asked for (a new time zone)
    distance_m: Mapped[float | None] = mapped_column(Float)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The route it was counted with (None: it followed none). While the route matcher looks
    # at an activity again, the activity counts with this route.
    route_id: Mapped[int | None] = mapped_column(Integer)
    # Dated ahead (a device's clock) when seen, so counting for nothing: when it starts to count.
    counts_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_badge_activities_counts_from", "counts_from"),)


CHALLENGE_KINDS = ("sessions", "distance", "climb")
CHALLENGE_STATUSES = ("active", "completed", "missed", "declined")
DECLINE_REASONS = ("too_hard", "too_easy", "not_now")


class Challenge(Base):
    """A personal challenge for one week of the athlete's calendar (Monday to Sunday in
    their time zone): a target built from their own recent weeks, the progress their
    counting activities of that week make towards it, and how it ended."""

    __tablename__ = "challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    week: Mapped[str] = mapped_column(String(8))  # ISO week in the athlete's time zone, "2026-W49"
    kind: Mapped[str] = mapped_column(String(12))
    sport: Mapped[str | None] = mapped_column(String(8))  # None: any sport counts
    target: Mapped[float] = mapped_column(Float)
    usual: Mapped[float] = mapped_column(Float)  # the athlete's usual week it was built from
    level: Mapped[int] = mapped_column(Integer, default=1)  # steps above the usual week (negative: gentler)
    policy: Mapped[str] = mapped_column(String(16), default="fixed")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)  # Monday 00:00, the athlete's time
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)  # the next Monday 00:00, the athlete's time
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(12), default="active")
    decline_reason: Mapped[str | None] = mapped_column(String(12))
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the completing activity's start
    completed_by: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The adaptive policy's decision (on the week's sessions challenge): the athlete's context
    # as a JSON list, and when the week's outcome was learnt from.
    context: Mapped[str | None] = mapped_column(Text)
    learned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(f"kind IN {CHALLENGE_KINDS}", name="kind"),
        CheckConstraint(f"status IN {CHALLENGE_STATUSES}", name="status"),
        CheckConstraint(f"decline_reason IS NULL OR decline_reason IN {DECLINE_REASONS}", name="decline_reason"),
        Index("uq_challenges_user_week_kind", "user_id", "week", "kind", unique=True),
        Index("ix_challenges_status_deadline", "status", "deadline"),
        Index("ix_challenges_completed_by", "completed_by"),
        Index("ix_challenges_policy_learned", "policy", "learned_at", "deadline"),
    )


class ChallengePolicy(Base):
    """What an adaptive challenge policy has learnt (``core.challenges.bandit``'s state as
    JSON), so that learning survives restarts and goes on from every outcome."""

    __tablename__ = "challenge_policies"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    state: Mapped[str] = mapped_column(Text)
    outcomes: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EngagementRisk(Base):
    """An athlete's latest churn risk: the engagement model's probability of no activity in
    the seven days after ``scored_at``."""

    __tablename__ = "engagement_risks"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    risk: Mapped[float] = mapped_column(Float)
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EngagementDay(Base):
    """How often an athlete signed in and visited the dashboard on a day (UTC): engagement
    signals beside activities, kudos and comments, which have tables of their own."""

    __tablename__ = "engagement_days"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    sign_ins: Mapped[int] = mapped_column(Integer, default=0)
    visits: Mapped[int] = mapped_column(Integer, default=0)


GROUP_KINDS = ("most_distance", "everyone_sessions")
MEMBER_STATUSES = ("invited", "joined", "declined")


class GroupChallenge(Base):
    """A challenge among athletes who follow each other: the most distance this month, or
    everyone doing ``target`` activities this week (the creator's month or week, in their
    time zone)."""

    __tablename__ = "group_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    creator_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    sport: Mapped[str | None] = mapped_column(String(8))  # None: both count
    target: Mapped[float | None] = mapped_column(Float)  # activities each, for everyone_sessions
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint(f"kind IN {GROUP_KINDS}", name="kind"),)


class GroupMember(Base):
    __tablename__ = "group_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("group_challenges.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), default="invited")
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(f"status IN {MEMBER_STATUSES}", name="status"),
        Index("ix_group_members_user", "user_id", "status"),
    )


class ChallengeSchedule(Base):
    """When an athlete is next due for the weekly assignment: the end of the week just
    assigned (their next Monday), or a little later when there was nothing to assign (no
    activity counted yet), so that nobody is looked at again every round."""

    __tablename__ = "challenge_schedule"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
