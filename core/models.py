"""SQLAlchemy models of the seed's entities and what the features need.

Friends are one-way follows, as on Strava: a row (user_id, friend_id) means user_id follows
friend_id and sees friend_id's activities shared with followers. Times inside are aware UTC
datetimes; route point times are Unix seconds (float) to keep ingest and track maths cheap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SPORTS = ("run", "ride")
STATUSES = ("created", "active", "paused", "stopped", "completed", "discarded")
VISIBILITIES = ("public", "followers", "private")
ROLES = ("athlete", "moderator")


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns aware UTC: the same on SQLite and PostgreSQL."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    email: Mapped[str | None] = mapped_column(String(256), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="athlete")
    default_visibility: Mapped[str] = mapped_column(String(16), default="followers")
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint(f"role IN {ROLES}", name="role"),)


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


class Activity(Base):
    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sport: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="created")
    title: Mapped[str] = mapped_column(String(200), default="")
    visibility: Mapped[str] = mapped_column(String(16), default="followers")
    source: Mapped[str] = mapped_column(String(16), default="device")
    source_hash: Mapped[str | None] = mapped_column(String(64))
    # The device's own id for an activity it created offline, so a retried create is idempotent.
    client_ref: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    distance_m: Mapped[float | None] = mapped_column(Float)
    moving_time_s: Mapped[float | None] = mapped_column(Float)
    elapsed_time_s: Mapped[float | None] = mapped_column(Float)
    avg_pace_s_per_km: Mapped[float | None] = mapped_column(Float)
    avg_speed_mps: Mapped[float | None] = mapped_column(Float)
    max_speed_mps: Mapped[float | None] = mapped_column(Float)
    best_1km_s: Mapped[float | None] = mapped_column(Float)
    elevation_gain_m: Mapped[float | None] = mapped_column(Float)
    elevation_loss_m: Mapped[float | None] = mapped_column(Float)
    point_count: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict | None] = mapped_column(JSON)
    # Flagged as anomalous and not cleared by a moderator: kept out of leaderboards.
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    user: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint(f"sport IN {SPORTS}", name="sport"),
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint(f"visibility IN {VISIBILITIES}", name="visibility"),
        # The feed reads one athlete's completed activities newest first.
        Index("ix_activities_feed", "user_id", "status", "start_time", "id"),
        # Leaderboards scan completed activities by time window and sport.
        Index("ix_activities_board", "status", "sport", "start_time"),
        Index("ix_activities_source", "user_id", "source_hash"),
        Index("uq_activities_client_ref", "user_id", "client_ref", unique=True),
    )


class RoutePoint(Base):
    """One GPS fix of an activity (the seed's Route table), keyed by the device's sequence."""

    __tablename__ = "route_points"

    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"),
                                             primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    t: Mapped[float] = mapped_column(Float)
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    ele: Mapped[float | None] = mapped_column(Float)
    acc: Mapped[float | None] = mapped_column(Float)
    hr: Mapped[float | None] = mapped_column(Float)
    cad: Mapped[float | None] = mapped_column(Float)


class ActivityEvent(Base):
    """A status change, with the time it happened (the device's clock when it says so)."""

    __tablename__ = "activity_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), index=True)
    command: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Kudos(Base):
    __tablename__ = "kudos"

    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DeviceToken(Base):
    """A device's credential for the ingest server; only a hash of the token is kept."""

    __tablename__ = "device_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="device")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class WebSession(Base):
    """A signed-in browser; the cookie holds the secret, the table only its SHA-256."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


# "cropped": the athlete cropped an activity a moderator had confirmed or asked to crop; it
# waits in the moderators' queue again (core.anomaly.flags holds the allowed transitions).
class LoginAttempt(Base):
    """A failed sign-in, counted per account and per client to throttle password guessing."""

    __tablename__ = "login_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "user:<username>" or "client:<address>"
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_login_attempts_key_at", "key", "at"),)


FLAG_STATUSES = ("clear", "flagged", "dismissed", "confirmed", "crop_requested", "cropped")
MODERATION_ACTIONS = ("dismiss", "confirm", "request_crop")


class ActivityFlag(Base):
    """The anomaly detector's verdict on an activity and where moderation stands."""

    __tablename__ = "activity_flags"

    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
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
        CheckConstraint(f"status IN {FLAG_STATUSES}", name="status"),
        Index("ix_activity_flags_queue", "status", "score"),
        Index("ix_activity_flags_user", "user_id", "sport"),
        Index("ix_activity_flags_centroid", "centroid_lat"),
    )


class ModerationDecision(Base):
    """A moderator's decision on a flagged activity: who, when, what, and the score then."""

    __tablename__ = "moderation_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[int] = mapped_column(ForeignKey("activities.id", ondelete="CASCADE"), index=True)
    moderator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text, default="")
    score: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint(f"action IN {MODERATION_ACTIONS}", name="action"),)
