"""Recommendation tables: what athletes tell us about routes, what they asked for, and the
suggestions computed for them.

Completions and repeats are not stored here: ``route_activities`` (``core.routes``) holds
which activity followed which route, and kudos live with the activities.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import true

from core.storage.base import Base, UTCDateTime, utcnow

SIGNALS = ("rating", "save", "dismiss")  # a 1-5 rating after completing; saved; "not for me"
TERRAINS = ("flat", "hilly", "any")
SUGGESTION_SOURCES = ("content", "popular", "collaborative", "friends")
REASON_MAX_CHARS = 200


class RouteSignal(Base):
    """One athlete's word on one route: the newest of each kind counts."""

    __tablename__ = "route_signals"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[float] = mapped_column(Float, default=1.0)  # the rating; 1 for a save or a dismissal
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(f"kind IN {SIGNALS}", name="kind"),
        Index("ix_route_signals_route", "route_id"),
    )


class DiscoverySettings(Base):
    """What an athlete told us for suggestions (the short question in settings), and whether
    others may be told about them. No row: nothing stated, and findable (the default)."""

    __tablename__ = "discovery_settings"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    sport: Mapped[str | None] = mapped_column(String(8))
    usual_distance_m: Mapped[float | None] = mapped_column(Float)
    terrain: Mapped[str] = mapped_column(String(8), default="any")
    # Where they would like to start, rounded to about a kilometre (never a door).
    area_lat: Mapped[float | None] = mapped_column(Float)
    area_lon: Mapped[float | None] = mapped_column(Float)
    discoverable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (CheckConstraint(f"terrain IN {TERRAINS}", name="terrain"),)


class RouteSuggestion(Base):
    """A route suggested to an athlete by the last training, best first; served after fresh
    filtering (what they dismissed, saved or did since, what stopped being public)."""

    __tablename__ = "route_suggestions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id", ondelete="CASCADE"), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(REASON_MAX_CHARS))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        CheckConstraint(f"source IN {SUGGESTION_SOURCES}", name="source"),
        Index("ix_route_suggestions_rank", "user_id", "rank"),
    )


class RecommenderState(Base):
    """What the last training chose (the collaborative algorithm, the hybrid's coefficients,
    the validation figures), so every process serves cold starts the same way."""

    __tablename__ = "recommender_state"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[dict] = mapped_column(JSON, default=dict)
    trained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
