"""Activity tables: activities and their lifecycle events."""

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
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.accounts.tables import User
from core.storage.base import Base, UTCDateTime, of_activity, utcnow
from core.text import CLIENT_REF_MAX_CHARS, TITLE_MAX_CHARS

SPORTS = ("run", "ride")
STATUSES = ("created", "active", "paused", "stopped", "completed", "discarded")
UNSHOWN = "shown_distance_m IS NULL AND status = 'completed'"
HALTED_STATUSES = ("paused", "stopped")  # moving time stands still; "active" runs it again
# The status each lifecycle command leads to (core.activities.lifecycle says from which).
COMMAND_STATUS = {"start": "active", "pause": "paused", "resume": "active", "stop": "stopped",
                  "complete": "completed", "discard": "discarded"}
VISIBILITIES = ("public", "followers", "private")
ORIGINAL_NAME_MAX_BYTES = 200  # of UTF-8: a file name's limit is 255 bytes


class Activity(Base):
    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sport: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default="created")
    title: Mapped[str] = mapped_column(String(TITLE_MAX_CHARS), default="")
    visibility: Mapped[str] = mapped_column(String(16), default="followers")
    source: Mapped[str] = mapped_column(String(16), default="device")
    source_hash: Mapped[str | None] = mapped_column(String(64))
    # The device's own id for an activity it created offline, so a retried create is idempotent.
    client_ref: Mapped[str | None] = mapped_column(String(CLIENT_REF_MAX_CHARS))
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
    # The distance others are shown (``core.social.shown.shown_distance``): less than
    # ``distance_m`` when its athlete hides part of it. Boards add this one up, so their
    # totals tell nothing of the hidden part. None until worked out again after the track or
    # what its athlete hides changed (``core.jobs.shown``): boards leave it out until then.
    shown_distance_m: Mapped[float | None] = mapped_column(Float)
    # Flagged as anomalous and not cleared by a moderator: kept out of leaderboards.
    held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Where its points are (core.storage.tiers): "hot" in route_points, "cold" in the archive;
    # how often and when it was last viewed while cold (views bring it back).
    points_tier: Mapped[str] = mapped_column(String(8), default="hot", server_default="hot")
    cold_reads: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cold_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The archive's file that holds its points while cold (core.storage.cold).
    cold_file: Mapped[str | None] = mapped_column(String(64))

    user: Mapped[User] = relationship(lazy="joined")

    __table_args__ = (
        CheckConstraint(f"sport IN {SPORTS}", name="sport"),
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint(f"visibility IN {VISIBILITIES}", name="visibility"),
        # The feed reads one athlete's completed activities newest first.
        Index("ix_activities_feed", "user_id", "status", "start_time", "id"),
        # Leaderboards scan completed activities by time window and sport.
        Index("ix_activities_board", "status", "sport", "start_time"),
        # The tiering job finds the hot activities old enough to archive, and the cold ones read.
        Index("ix_activities_tier", "points_tier", "start_time"),
        Index("ix_activities_source", "user_id", "source_hash"),
        Index("uq_activities_client_ref", "user_id", "client_ref", unique=True),
        # What every foreign key to an activity refers to, with the athlete in it
        # (core.storage.base.of_activity). On PostgreSQL it is the primary key itself
        # (migration 0027): a distributed PostgreSQL wants the athlete in every key.
        Index("uq_activities_id_user_id", "id", "user_id", unique=True),
        # The completed activities whose shown distance is to be worked out (``core.jobs.shown``).
        Index("ix_activities_unshown", "user_id", sqlite_where=text(UNSHOWN), postgresql_where=text(UNSHOWN)),
    )


class ActivityEvent(Base):
    """A status change, with the time it happened (the device's clock when it says so)."""

    __tablename__ = "activity_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True)
    user_id: Mapped[int] = mapped_column(Integer)  # the activity's athlete
    command: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[float] = mapped_column(Float)

    __table_args__ = (of_activity(),)


class OriginalFile(Base):
    """The file an activity was imported from, as the athlete uploaded it: kept gzipped in
    the archive (``core.activities.originals``), for their data export."""

    __tablename__ = "activity_originals"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the activity's athlete
    name: Mapped[str] = mapped_column(String(ORIGINAL_NAME_MAX_BYTES))  # as uploaded, without its folders
    kind: Mapped[str] = mapped_column(String(8))  # fit, gpx or tcx
    size: Mapped[int] = mapped_column(BigInteger)  # bytes as uploaded
    stored_bytes: Mapped[int] = mapped_column(BigInteger)  # bytes gzipped, in the archive
    file: Mapped[str] = mapped_column(String(64))  # its name in the athlete's folder of the archive
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        of_activity(),
        # The sweep asks whether a file is named.
        Index("ix_activity_originals_file", "user_id", "file"),
    )
