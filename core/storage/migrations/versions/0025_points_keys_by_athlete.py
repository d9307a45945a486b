"""route points keyed with their athlete: the primary key (activity_id, seq, user_id) and the
foreign key (activity_id, user_id) to a unique (id, user_id) of activities, so that a
distributed PostgreSQL (Citus) can distribute both tables on user_id and keep an athlete's
points with their activities (it refuses keys without the distribution column)

The key keeps activity_id first, so reading an activity's points in order still walks one
stretch of the index. It is no weaker than (activity_id, seq): the foreign key makes every
point's user_id that of its activity.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 02:00:00
"""
from alembic import op


revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

COLUMNS = "activity_id, seq, user_id, t, lat, lon, ele, acc, hr, cad"
PK, FK = "pk_route_points", "fk_route_points_activity_id_activities"


def _rebuild_sqlite(keys: str, references: str, select: str) -> None:
    """SQLite cannot change a table's keys in place: the table is made again and the rows
    ``select`` gives copied (nothing refers to route_points, so dropping the old one deletes
    nothing else)."""
    op.execute(f"""
        CREATE TABLE route_points_new (
            activity_id INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            user_id INTEGER NOT NULL,
            t FLOAT NOT NULL,
            lat FLOAT, lon FLOAT, ele FLOAT, acc FLOAT, hr FLOAT, cad FLOAT,
            CONSTRAINT {PK} PRIMARY KEY ({keys}),
            CONSTRAINT {FK} FOREIGN KEY ({references}) ON DELETE CASCADE
        )""")
    op.execute(f"INSERT INTO route_points_new ({COLUMNS}) {select}")
    op.execute("DROP TABLE route_points")
    op.execute("ALTER TABLE route_points_new RENAME TO route_points")


# Every point takes its activity's athlete: the foreign key refuses any other, and points
# written before the ingest server looked athletes up at every commit on SQLite (which may
# give a deleted newest activity's id to the next one) can name the deleted one's. Points
# without their activity (SQLite's ingest connection leaves foreign keys to its own check)
# are left behind.
OWNED = ("SELECT p.activity_id, p.seq, a.user_id, p.t, p.lat, p.lon, p.ele, p.acc, p.hr, p.cad "
         "FROM route_points p JOIN activities a ON a.id = p.activity_id ORDER BY p.activity_id, p.seq")


def upgrade() -> None:
    op.create_index('uq_activities_id_user_id', 'activities', ['id', 'user_id'], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE route_points p SET user_id = a.user_id FROM activities a "
                   "WHERE a.id = p.activity_id AND p.user_id <> a.user_id")
        # On the partitioned table: each partition's key is rebuilt with it.
        op.execute(f"ALTER TABLE route_points DROP CONSTRAINT {FK}")
        op.execute(f"ALTER TABLE route_points DROP CONSTRAINT {PK}")
        op.execute(f"ALTER TABLE route_points ADD CONSTRAINT {PK} PRIMARY KEY (activity_id, seq, user_id)")
        op.execute(f"ALTER TABLE route_points ADD CONSTRAINT {FK} FOREIGN KEY (activity_id, user_id) "
                   "REFERENCES activities (id, user_id) ON DELETE CASCADE")
    else:
        _rebuild_sqlite("activity_id, seq, user_id", "activity_id, user_id) REFERENCES activities (id, user_id", OWNED)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE route_points DROP CONSTRAINT {FK}")
        op.execute(f"ALTER TABLE route_points DROP CONSTRAINT {PK}")
        op.execute(f"ALTER TABLE route_points ADD CONSTRAINT {PK} PRIMARY KEY (activity_id, seq)")
        op.execute(f"ALTER TABLE route_points ADD CONSTRAINT {FK} FOREIGN KEY (activity_id) "
                   "REFERENCES activities (id) ON DELETE CASCADE")
    else:
        _rebuild_sqlite("activity_id, seq", "activity_id) REFERENCES activities (id",
                        f"SELECT {COLUMNS} FROM route_points ORDER BY activity_id, seq")
    op.drop_index('uq_activities_id_user_id', table_name='activities')
