"""Account tables: users, device tokens, web sessions and failed sign-ins."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.base import Base, UTCDateTime, utcnow
from core.text import DEVICE_NAME_MAX_CHARS

ROLES = ("athlete", "moderator")
# What a device token may say its fixes record (core.activities.tables.SPORTS, which this
# package may not import); None: inferred from the speeds when the activity completes.
DEVICE_SPORTS = ("run", "ride")


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


class DeviceToken(Base):
    """A device's credential for the ingest server; only a hash of the token is kept."""

    __tablename__ = "device_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(DEVICE_NAME_MAX_CHARS), default="device")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    # The sport of the activities made from this device's fixes (phone apps that send bare
    # fixes, core.devices); None: inferred from the speeds at completion.
    sport: Mapped[str | None] = mapped_column(String(8))

    __table_args__ = (CheckConstraint(f"sport IS NULL OR sport IN {DEVICE_SPORTS}", name="sport"),)


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


# An archive of everything about an athlete (core.jobs.export): asked for, built in the
# background (``done`` of ``total`` steps), ready to download until ``expires_at``, or failed.
EXPORT_STATES = ("queued", "building", "ready", "failed")


class DataExport(Base):
    """An athlete's asked-for archive of their data; the file is named by ``file_name`` (random)
    in the exports folder, and deleted with the row when it expires or the account goes."""

    __tablename__ = "data_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    file_name: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(String(256))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The build under way: who took it (a random token) and when it last said it was alive.
    claim: Mapped[str | None] = mapped_column(String(32))
    beat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(f"status IN {EXPORT_STATES}", name="status"),
        # One archive asked for and not built yet per athlete, however many clicks at once.
        Index("uq_data_exports_waiting", "user_id", unique=True,
              sqlite_where=text("status IN ('queued', 'building')"),
              postgresql_where=text("status IN ('queued', 'building')")),
    )


def utc_now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)
