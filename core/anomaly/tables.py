"""Anomaly tables: each activity's flag and the moderators' decisions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from core.storage.base import Base, UTCDateTime, of_activity, utcnow

# "sampled": scored clear near the threshold and drawn at random for the moderators' review
# (core.anomaly.flags), neither held nor shown to the athlete.
FLAG_STATUSES = ("clear", "flagged", "dismissed", "confirmed", "crop_requested", "cropped", "sampled")
MODERATION_ACTIONS = ("dismiss", "confirm", "request_crop")


class ActivityFlag(Base):
    """The anomaly detector's verdict on an activity and where moderation stands."""

    __tablename__ = "activity_flags"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # the activity's athlete
    sport: Mapped[str] = mapped_column(String(8))
    score: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list] = mapped_column(JSON, default=list)
    codes: Mapped[str] = mapped_column(String(200), default="")  # rule codes, space separated
    verdict: Mapped[dict] = mapped_column(JSON, default=dict)  # hits, parts, threshold
    features: Mapped[dict] = mapped_column(JSON, default=dict)
    fingerprint: Mapped[dict | None] = mapped_column(JSON)
    centroid_lat: Mapped[float | None] = mapped_column(Float)
    centroid_lon: Mapped[float | None] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(64), default="")
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The athlete's crops since the flag was raised: the range removed, the figures before
    # and after, and the reasons the flag had before the first crop.
    crop: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (
        of_activity(),
        CheckConstraint(f"status IN {FLAG_STATUSES}", name="status"),
        Index("ix_activity_flags_queue", "status", "score"),
        Index("ix_activity_flags_user", "user_id", "sport"),
        Index("ix_activity_flags_centroid", "centroid_lat"),
    )


class PendingCrop(Base):
    """An athlete's crops whose new score is not written yet: with Redis, a crop is scored by
    the scorers of the stream (``core.jobs.stream``), not in the athlete's request. The
    crops' records in order (``core.anomaly.moderation.plan_crop``), and a version drawn
    anew at every crop (a scorer writes its verdict only if the version it read is still
    there: no crop came since, even one after another scorer's verdict). Gone once the
    verdict is written."""

    __tablename__ = "pending_crops"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # The athlete in the key, as the points have it (a distributed PostgreSQL keeps it with
    # the activity: README, "Distributing by athlete").
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crops: Mapped[list] = mapped_column(JSON, default=list)
    version: Mapped[str] = mapped_column(String(32))
    cropped_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (of_activity(),)


class ModerationDecision(Base):
    """A moderator's decision on a flagged activity: who, when, what, and the score then;
    ``sample`` when the activity came to the queue as a random sample of cleared ones."""

    __tablename__ = "moderation_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True)
    user_id: Mapped[int] = mapped_column(Integer)  # the activity's athlete
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float] = mapped_column(Float)
    sample: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (of_activity(), CheckConstraint(f"action IN {MODERATION_ACTIONS}", name="action"))


class ScoringFailure(Base):
    """An activity the detector failed to score: how often, the last error, and when it is
    tried again (``retry_at``; None once given up, for a moderator to look at). Gone once
    the activity has a verdict (``core.anomaly.failures``)."""

    __tablename__ = "scoring_failures"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)  # the activity's athlete
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(300))
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The moderator who last had it tried again after it was given up on, and when.
    retried_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (of_activity(),)
