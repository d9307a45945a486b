"""Tables of activities made from a device's stream of fixes: the stream's span per activity,
and the apps' own motion hints per stored fix."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.base import Base, UTCDateTime, of_activity

MOTION_MAX_CHARS = 24  # fix_hints.motion: the app's activity type (still, in_vehicle, ...)


class DeviceTrack(Base):
    """One activity born from a device's fixes, and the span of fix times it holds.

    ``anchor_t`` is the first fix's time: point sequence numbers count deciseconds from it, so
    the same fix sent twice gets the same number. ``heard_at`` is when (wall clock) the last new
    fix arrived; the activity completes once both it and ``last_t`` are older than the idle
    time. ``recompute``: a late fix landed after completion and the summary is stale; when
    recomputing it failed for a reason of its own, ``recompute_attempts``, the last error and
    when it is tried again (``recompute_retry_at``; given up after
    ``core.anomaly.failures.MAX_ATTEMPTS``, the summary kept as it was)."""

    __tablename__ = "device_tracks"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)  # the activity's athlete
    token_id: Mapped[int] = mapped_column(ForeignKey("device_tokens.id", ondelete="CASCADE"))
    anchor_t: Mapped[float] = mapped_column(Float)
    first_t: Mapped[float] = mapped_column(Float)
    last_t: Mapped[float] = mapped_column(Float)
    heard_at: Mapped[float] = mapped_column(Float)
    sport_inferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    recompute: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    recompute_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    recompute_error: Mapped[str | None] = mapped_column(String(300))
    recompute_retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        of_activity(),
        # A device's activities near a fix's time.
        Index("ix_device_tracks_token_last", "token_id", "last_t"),
        Index("ix_device_tracks_recompute", "recompute"),
    )


class FixHint(Base):
    """What the app said of a stored fix besides its position: its own motion hint, activity
    type, speed, bearing and battery. A row only when the fix carried one of them."""

    __tablename__ = "fix_hints"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)  # the activity's athlete
    is_moving: Mapped[bool | None] = mapped_column(Boolean)
    motion: Mapped[str | None] = mapped_column(String(MOTION_MAX_CHARS))
    speed_mps: Mapped[float | None] = mapped_column(Float)
    bearing: Mapped[float | None] = mapped_column(Float)
    battery: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (of_activity(),)
