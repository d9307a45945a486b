"""route points: the athlete's id on every point; on PostgreSQL, the table partitioned by
ranges of activity id (ids grow with time: each partition holds the points of the
activities created in one stretch of time, whole)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 19:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None

# The first partitions' size, in activity ids; later ones take TRACKER_POINT_PARTITION_SIZE
# (core.storage.partitions, which the worker runs to create them ahead).
FIRST_SIZE = 20_000
AHEAD = 2  # partitions beyond the newest activity

COLUMNS = "activity_id, seq, user_id, t, lat, lon, ele, acc, hr, cad"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        # SQLite: a column added in place (a rebuild would copy every point), filled from
        # the activities; every insert names it (core.storage.points).
        op.execute("ALTER TABLE route_points ADD COLUMN user_id INTEGER NOT NULL DEFAULT 0")
        op.execute("UPDATE route_points SET user_id = "
                   "(SELECT user_id FROM activities WHERE activities.id = route_points.activity_id)")
        return
    op.execute("ALTER TABLE route_points RENAME TO route_points_unpartitioned")
    op.execute("ALTER TABLE route_points_unpartitioned RENAME CONSTRAINT pk_route_points TO pk_route_points_unpartitioned")
    op.execute("ALTER TABLE route_points_unpartitioned RENAME CONSTRAINT fk_route_points_activity_id_activities "
               "TO fk_route_points_unpartitioned_activity_id")
    op.execute("""
        CREATE TABLE route_points (
            activity_id bigint NOT NULL,
            seq integer NOT NULL,
            user_id integer NOT NULL,
            t double precision NOT NULL,
            lat double precision, lon double precision, ele double precision,
            acc double precision, hr double precision, cad double precision,
            CONSTRAINT pk_route_points PRIMARY KEY (activity_id, seq),
            CONSTRAINT fk_route_points_activity_id_activities FOREIGN KEY (activity_id)
                REFERENCES activities (id) ON DELETE CASCADE
        ) PARTITION BY RANGE (activity_id)""")
    # Rows beyond the partitions made ahead (a worker stopped for long) land here until the
    # worker makes their partition; so do the points brought back from the archive into a
    # range whose partition was dropped.
    op.execute("CREATE TABLE route_points_default PARTITION OF route_points DEFAULT")
    top = bind.execute(sa.text("SELECT coalesce(max(id), 0) FROM activities")).scalar()
    for k in range(int(top) // FIRST_SIZE + AHEAD):
        lo, hi = k * FIRST_SIZE, (k + 1) * FIRST_SIZE
        op.execute(f"CREATE TABLE route_points_a{lo} PARTITION OF route_points FOR VALUES FROM ({lo}) TO ({hi})")
    op.execute(f"INSERT INTO route_points ({COLUMNS}) SELECT p.activity_id, p.seq, a.user_id, p.t, p.lat, p.lon, "
               "p.ele, p.acc, p.hr, p.cad FROM route_points_unpartitioned p JOIN activities a ON a.id = p.activity_id")
    op.execute("DROP TABLE route_points_unpartitioned")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        op.drop_column('route_points', 'user_id')
        return
    op.execute("ALTER TABLE route_points RENAME TO route_points_partitioned")
    op.execute("ALTER TABLE route_points_partitioned RENAME CONSTRAINT pk_route_points TO pk_route_points_partitioned")
    op.execute("ALTER TABLE route_points_partitioned RENAME CONSTRAINT fk_route_points_activity_id_activities "
               "TO fk_route_points_partitioned_activity_id")
    op.execute("""
        CREATE TABLE route_points (
            activity_id bigint NOT NULL,
            seq integer NOT NULL,
            t double precision NOT NULL,
            lat double precision, lon double precision, ele double precision,
            acc double precision, hr double precision, cad double precision,
            CONSTRAINT pk_route_points PRIMARY KEY (activity_id, seq),
            CONSTRAINT fk_route_points_activity_id_activities FOREIGN KEY (activity_id)
                REFERENCES activities (id) ON DELETE CASCADE
        )""")
    op.execute("INSERT INTO route_points (activity_id, seq, t, lat, lon, ele, acc, hr, cad) "
               "SELECT activity_id, seq, t, lat, lon, ele, acc, hr, cad FROM route_points_partitioned")
    # Dropping the parent drops every partition with it.
    op.execute("DROP TABLE route_points_partitioned")
