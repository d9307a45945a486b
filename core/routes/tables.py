"""Route tables: the routes found in public activities, the grid cells they pass through,
and which activity went which way."""

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
    LargeBinary,
    SmallInteger,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from core.routes.shape import KINDS
from core.storage.base import Base, UTCDateTime, of_activity, utcnow

ROUTE_NAME_MAX_CHARS = 80


class Route(Base):
    """A way several activities followed. Everything here comes from public activities not
    held as anomalous; ``polyline`` keeps clear of every such activity's start and end."""

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    name: Mapped[str] = mapped_column(String(ROUTE_NAME_MAX_CHARS), default="")
    kind: Mapped[str] = mapped_column(String(16))
    # The representative activity's trimmed shape (float32 lat, lon pairs every 25 m): what
    # new activities are matched against. Never shown: ``polyline`` is.
    shape: Mapped[bytes] = mapped_column(LargeBinary)
    # No foreign key: routes belong to no athlete, so a distributed PostgreSQL cannot keep
    # them with the activity; deleting an activity clears it (core.activities.references).
    representative_id: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    polyline: Mapped[list] = mapped_column(JSON, default=list)
    start_lat: Mapped[float | None] = mapped_column(Float)
    start_lon: Mapped[float | None] = mapped_column(Float)
    cells: Mapped[int] = mapped_column(Integer, default=0)  # how many grid cells the shape passes through
    path_m: Mapped[float] = mapped_column(Float)
    distance_m: Mapped[float | None] = mapped_column(Float)
    elevation_gain_m: Mapped[float | None] = mapped_column(Float)
    hilliness_m_per_km: Mapped[float | None] = mapped_column(Float)
    turns_per_km: Mapped[float] = mapped_column(Float, default=0.0)
    stops_per_km: Mapped[float | None] = mapped_column(Float)
    # How fast athletes go here against their usual speed in the sport (below 1: rough
    # ground, climbs or crowds; a terrain proxy).
    pace_ratio: Mapped[float | None] = mapped_column(Float)
    speeds: Mapped[dict] = mapped_column(JSON, default=dict)  # sport -> median average speed (m/s)
    sports: Mapped[dict] = mapped_column(JSON, default=dict)  # sport -> activities
    athletes: Mapped[int] = mapped_column(Integer, default=0)
    activities: Mapped[int] = mapped_column(Integer, default=0)
    last_done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set in the same transaction as a change of its members, cleared when its figures and
    # polyline are recomputed: a crash in between leaves it for the next round.
    dirty: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        CheckConstraint(f"kind IN {KINDS}", name="kind"),
        Index("ix_routes_dirty", "dirty"),
        Index("ix_routes_start", "start_lat", "start_lon"),
        # A route whose representative was deleted (an account or an activity gone) is
        # recomputed by the next round, found through this index.
        Index("ix_routes_representative", "representative_id"),
    )


class RouteCell(Base):
    """A grid cell a route's shape passes through (``core.routes.shape.cells``)."""

    __tablename__ = "route_cells"

    cell: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    route_id: Mapped[int] = mapped_column(ForeignKey("routes.id", ondelete="CASCADE"), primary_key=True)

    __table_args__ = (Index("ix_route_cells_route", "route_id"),)


class RouteActivity(Base):
    """One completed activity as the route matcher saw it: the route it followed (None when
    none), and whether it counts in the route's public figures (public, not held). A private
    activity may follow a route, for its own athlete's eyes only."""

    __tablename__ = "route_activities"

    activity_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    route_id: Mapped[int | None] = mapped_column(ForeignKey("routes.id", ondelete="SET NULL"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # the activity's athlete
    direction: Mapped[int] = mapped_column(SmallInteger, default=1)
    counted: Mapped[bool] = mapped_column(Boolean, default=False)
    # What the activity was when matched: a change sends it back to the matcher.
    visibility: Mapped[str] = mapped_column(String(16))
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    points: Mapped[int] = mapped_column(Integer, default=0)
    start_lat: Mapped[float | None] = mapped_column(Float)
    start_lon: Mapped[float | None] = mapped_column(Float)
    end_lat: Mapped[float | None] = mapped_column(Float)
    end_lon: Mapped[float | None] = mapped_column(Float)
    # A secret offset (metres east and north) of the circles the polyline keeps out of around
    # its start and end, so that the polyline's cut ends do not point at the door
    # (``matching.trim_ends``). Never shown.
    trim_dx_m: Mapped[float | None] = mapped_column(Float)
    trim_dy_m: Mapped[float | None] = mapped_column(Float)
    matched_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        of_activity(),
        Index("ix_route_activities_route", "route_id", "counted"),
        Index("ix_route_activities_user", "user_id", "route_id"),
        # A new route sends the unmatched activities that began near it back to the matcher.
        Index("ix_route_activities_unmatched", "route_id", "start_lat"),
    )
