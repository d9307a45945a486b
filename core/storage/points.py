"""Route points: the one module that writes and reads them."""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import (
    Float,
    ForeignKey,
    Integer,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.activities.tables import Activity
from core.storage.base import Base
from core.tracks.track import Track


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



log = logging.getLogger(__name__)

POINT_FIELDS = ("lat", "lon", "ele", "acc", "hr", "cad")
POINT_COLUMNS = ("activity_id", "seq", "t", *POINT_FIELDS)


def insert_points(s: Session, rows: list[dict]) -> int:
    """Insert point rows, skipping (activity_id, seq) pairs already stored; return how many."""
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = (insert(RoutePoint).on_conflict_do_nothing(index_elements=["activity_id", "seq"])
            .returning(RoutePoint.seq))
    # RETURNING names the rows really inserted; executemany's rowcount is not reliable.
    return len(s.execute(stmt, rows).all())


def stored_track(s: Session, activity: Activity) -> Track:
    """The stored points of an activity in time order, as a Track."""
    rows = s.execute(
        select(RoutePoint.t, RoutePoint.lat, RoutePoint.lon, RoutePoint.ele, RoutePoint.acc,
               RoutePoint.hr, RoutePoint.cad)
        .where(RoutePoint.activity_id == activity.id)
        .order_by(RoutePoint.t, RoutePoint.seq)
    ).all()
    data = np.array(rows, dtype=np.float64) if rows else np.empty((0, 7))
    cols = [np.ascontiguousarray(data[:, i]) for i in range(7)]
    return Track(*cols, sport=activity.sport, name=activity.title)


def count_points(s: Session, activity_id: int) -> int:
    """How many points are stored for an activity."""
    return int(s.scalar(select(func.count()).select_from(RoutePoint)
                        .where(RoutePoint.activity_id == activity_id)) or 0)


def insert_new_points(s: Session, rows: list[tuple]) -> None:
    """Insert rows (tuples in POINT_COLUMNS order) into an activity that has none of their
    seqs yet, as the ingest server does: COPY on PostgreSQL, the driver's executemany on
    SQLite, with no conflict check and no ORM, to keep an import's transactions short."""
    conn = s.connection()
    columns = ", ".join(POINT_COLUMNS)
    if conn.dialect.name == "postgresql":
        with conn.connection.driver_connection.cursor() as cur, \
                cur.copy(f"COPY route_points ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join("?" * len(POINT_COLUMNS))
        conn.exec_driver_sql(f"INSERT INTO route_points ({columns}) VALUES ({marks})", rows)
