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


def _rebuild_sqlite(keys: str, references: str) -> None:
    """SQLite cannot change a table's keys in place: the table is made again and the rows
    copied (nothing refers to route_points, so dropping the old one deletes nothing else)."""
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
    op.execute(f"INSERT INTO route_points_new ({COLUMNS}) SELECT {COLUMNS} FROM route_points ORDER BY activity_id, seq")
    op.execute("DROP TABLE route_points")
    op.execute("ALTER TABLE route_points_new RENAME TO route_points")


def upgrade() -> None:
    op.create_index('uq_activities_id_user_id', 'activities', ['id', 'user_id'], unique=True)
    if op.get_bind().dialect.name == "postgresql":
        # On the partitioned table: each partition's key is rebuilt with it.
        op.execute(f"ALTER TABLE route_points DROP CONSTRAINT {FK}")
        op.execute(f"ALTER TABLE route_points DROP CONSTRAINT {PK}")
        op.execute(f"ALTER TABLE route_points ADD CONSTRAINT {PK} PRIMARY KEY (activity_id, seq, user_id)")
        op.execute(f"ALTER TABLE route_points ADD CONSTRAINT {FK} FOREIGN KEY (activity_id, user_id) "
                   "REFERENCES activities (id, user_id) ON DELETE CASCADE")
    else:
        _rebuild_sqlite("activity_id, seq, user_id", "activity_id, user_id) REFERENCES activities (id, user_id")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE route_points DROP CONSTRAINT {FK}")
        op.execute(f"ALTER TABLE route_points DROP CONSTRAINT {PK}")
        op.execute(f"ALTER TABLE route_points ADD CONSTRAINT {PK} PRIMARY KEY (activity_id, seq)")
        op.execute(f"ALTER TABLE route_points ADD CONSTRAINT {FK} FOREIGN KEY (activity_id) "
                   "REFERENCES activities (id) ON DELETE CASCADE")
    else:
        _rebuild_sqlite("activity_id, seq", "activity_id) REFERENCES activities (id")
    op.drop_index('uq_activities_id_user_id', table_name='activities')
