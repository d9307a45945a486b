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


def _create(partitioned: bool) -> None:
    """The new points table, under the name route_points_new (its constraints named for it on
    PostgreSQL, where names are the schema's, and as they end on SQLite)."""
    new = "_new" if partitioned else ""
    op.execute(f"""
        CREATE TABLE route_points_new (
            activity_id {'bigint' if partitioned else 'INTEGER'} NOT NULL,
            seq integer NOT NULL,
            user_id integer NOT NULL,
            t double precision NOT NULL,
            lat double precision, lon double precision, ele double precision,
            acc double precision, hr double precision, cad double precision,
            CONSTRAINT pk_route_points{new} PRIMARY KEY (activity_id, seq),
            CONSTRAINT {f'fk_route_points{new}_activity_id' if new else 'fk_route_points_activity_id_activities'}
                FOREIGN KEY (activity_id)
                REFERENCES activities (id) ON DELETE CASCADE
        ){' PARTITION BY RANGE (activity_id)' if partitioned else ''}""")


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("ALTER TABLE route_points RENAME CONSTRAINT pk_route_points TO pk_route_points_old")
        op.execute("ALTER TABLE route_points RENAME CONSTRAINT fk_route_points_activity_id_activities "
                   "TO fk_route_points_old_activity_id")
    _create(postgres)
    if postgres:
        # One partition for the ids in use, then ranges of FIRST_SIZE ahead (the worker makes
        # the next ones, of TRACKER_POINT_PARTITION_SIZE). Rows beyond them (a worker stopped
        # for long) land in the default partition until the worker makes theirs.
        op.execute("CREATE TABLE route_points_default PARTITION OF route_points_new DEFAULT")
        top = int(bind.execute(sa.text("SELECT coalesce(max(id), 0) FROM activities")).scalar())
        bounds = [0, (top // FIRST_SIZE + 1) * FIRST_SIZE]
        bounds += [bounds[-1] + k * FIRST_SIZE for k in range(1, AHEAD)]
        for lo, hi in zip(bounds, bounds[1:]):
            op.execute(f"CREATE TABLE route_points_a{lo} PARTITION OF route_points_new FOR VALUES FROM ({lo}) TO ({hi})")
    # The athlete of every point from its activity (SQLite too: a column added in place could
    # not be NOT NULL without a default that would accept a point without its athlete).
    op.execute(f"INSERT INTO route_points_new ({COLUMNS}) SELECT p.activity_id, p.seq, a.user_id, p.t, p.lat, "
               "p.lon, p.ele, p.acc, p.hr, p.cad FROM route_points p JOIN activities a ON a.id = p.activity_id")
    op.execute("DROP TABLE route_points")
    op.execute("ALTER TABLE route_points_new RENAME TO route_points")
    if postgres:
        op.execute("ALTER TABLE route_points RENAME CONSTRAINT pk_route_points_new TO pk_route_points")
        op.execute("ALTER TABLE route_points RENAME CONSTRAINT fk_route_points_new_activity_id "
                   "TO fk_route_points_activity_id_activities")


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
