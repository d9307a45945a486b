"""Social tables: follows, follow requests, blocks, comments and kudos."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.base import Base, UTCDateTime, of_activity, utcnow


class Friend(Base):
    """user_id follows friend_id."""

    __tablename__ = "friends"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    friend_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("user_id <> friend_id", name="not_self"),
        Index("ix_friends_friend_id", "friend_id"),
    )


class FollowRequest(Base):
    """user_id asked to follow target_id, who approves new followers; pending until answered."""

    __tablename__ = "follow_requests"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("user_id <> target_id", name="not_self"),
        Index("ix_follow_requests_target", "target_id", "created_at"),
    )


class Block(Base):
    """user_id blocked blocked_id: the blocked athlete sees nothing of user_id's and cannot
    follow them, comment on or give kudos to their activities."""

    __tablename__ = "blocks"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    blocked_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint("user_id <> blocked_id", name="not_self"),
        Index("ix_blocks_blocked_id", "blocked_id"),
    )


class PrivacyZone(Base):
    """An area of an athlete's (their home, their work) that nobody else sees on any activity.

    ``lat``, ``lon`` and ``radius_m`` are the point and radius the athlete gave; only they see
    them. What is hidden is the circle around ``hidden_lat``, ``hidden_lon`` of
    ``hidden_radius_m``: its centre lies a secret, random distance and direction away from the
    athlete's point, drawn once for the zone (``core.social.privacy``), and it reaches at least
    ``radius_m`` beyond the point in every direction."""

    __tablename__ = "privacy_zones"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    radius_m: Mapped[float] = mapped_column(Float)
    hidden_lat: Mapped[float] = mapped_column(Float)
    hidden_lon: Mapped[float] = mapped_column(Float)
    hidden_radius_m: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint("radius_m >= 200 AND radius_m <= 1600", name="radius"),)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True)
    owner_id: Mapped[int] = mapped_column(Integer)  # the activity's athlete
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)  # its author
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (of_activity("owner_id"),)


class Kudos(Base):
    __tablename__ = "kudos"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)  # its giver
    owner_id: Mapped[int] = mapped_column(Integer)  # the activity's athlete
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (of_activity("owner_id"), Index("ix_kudos_user_id", "user_id"))
