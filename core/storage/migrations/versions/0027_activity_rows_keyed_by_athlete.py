"""every row of an activity carries its athlete: the tables that refer to an activity hold
the activity's athlete (``user_id``, or ``owner_id`` where ``user_id`` is someone else: the
author of a comment, the giver of kudos) and refer to ``activities (id, user_id)``; on
PostgreSQL, ``activities`` is keyed by ``(id, user_id)`` and so is each of these tables, so
that a distributed PostgreSQL (Citus) can distribute them all on the athlete (it refuses a
key, unique constraint or foreign key without the distribution column). The three
references that were set to NULL when their activity went (a badge's earning activity, a
challenge's completing one, a route's representative) keep no foreign key: Citus refuses
SET NULL on a key with the distribution column in it, and routes belong to no athlete. The
code that deletes activities clears them (``core.activities.references``).

On SQLite, the primary keys stay as they were (an integer key is SQLite's row id, which
gives new ids), and the two tables' SET NULL references too: SQLite is never distributed,
and rebuilding ``routes`` would empty the tables that refer to it. Each table with a new
foreign key is copied into a new one: run it at a quiet time on a large database.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 09:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

# table: (the activity's athlete, whether the column is new, primary key before, after (PostgreSQL))
OWNED = {
    "activity_events": ("user_id", True, "id", "id, user_id"),
    "activity_flags": ("user_id", False, "activity_id", "activity_id, user_id"),
    "moderation_decisions": ("user_id", True, "id", "id, user_id"),
    "scoring_failures": ("user_id", False, "activity_id", "activity_id, user_id"),
    "device_tracks": ("user_id", True, "activity_id", "activity_id, user_id"),
    "fix_hints": ("user_id", True, "activity_id, seq", "activity_id, seq, user_id"),
    "route_activities": ("user_id", False, "activity_id", "activity_id, user_id"),
    "comments": ("owner_id", True, "id", "id, owner_id"),
    "kudos": ("owner_id", True, "activity_id, user_id", "activity_id, user_id, owner_id"),
}
# Rows that belong to an athlete and refer to an activity without a foreign key: the key
# takes the athlete on PostgreSQL.
UNREFERENCED = {"badge_awards": ("id", "id, user_id"), "challenges": ("id", "id, user_id"),
                "badge_activities": ("activity_id", "activity_id, user_id")}
SET_NULL = {"badge_awards": "activity_id", "challenges": "completed_by", "routes": "representative_id"}
# Foreign keys that already refer to (id, user_id): they rest on the unique index the new
# primary key takes over.
KEYED = {"route_points": "user_id", "pending_crops": "user_id"}


def _fk(table: str, column: str = "activity_id") -> str:
    return f"fk_{table}_{column}_activities"


def _fill(table: str, owner: str) -> None:
    """Give every row its activity's athlete (rows kept before may name another, or none)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"UPDATE {table} t SET {owner} = a.user_id FROM activities a "
                   f"WHERE a.id = t.activity_id AND t.{owner} IS DISTINCT FROM a.user_id")
    else:
        # SQLite's ingest connection leaves foreign keys to its own checks: a row whose
        # activity is gone is left behind, as the foreign key would have removed it.
        op.execute(f"DELETE FROM {table} WHERE activity_id NOT IN (SELECT id FROM activities)")
        op.execute(f"UPDATE {table} SET {owner} = (SELECT a.user_id FROM activities a WHERE a.id = {table}.activity_id)"
                   f" WHERE {owner} IS NULL OR {owner} <> (SELECT a.user_id FROM activities a "
                   f"WHERE a.id = {table}.activity_id)")


def _upgrade_postgresql() -> None:
    for table, (owner, new, _, _) in OWNED.items():
        if new:
            op.add_column(table, sa.Column(owner, sa.Integer(), nullable=True))
        _fill(table, owner)
        if new:
            op.alter_column(table, owner, nullable=False)
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {_fk(table)}")
    for table, column in SET_NULL.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {_fk(table, column)}")
    for table in KEYED:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {_fk(table)}")
    # The unique (id, user_id) becomes the primary key: no second index to keep.
    op.execute("ALTER TABLE activities DROP CONSTRAINT pk_activities")
    op.execute("ALTER TABLE activities ADD CONSTRAINT pk_activities PRIMARY KEY USING INDEX uq_activities_id_user_id")
    for table, owner in KEYED.items():
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {_fk(table)} FOREIGN KEY (activity_id, {owner}) "
                   "REFERENCES activities (id, user_id) ON DELETE CASCADE")
    keys = {t: (before, after) for t, (_, _, before, after) in OWNED.items()} | UNREFERENCED
    for table, (_, after) in keys.items():
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({after})")
    for table, (owner, _, _, _) in OWNED.items():
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {_fk(table)} FOREIGN KEY (activity_id, {owner}) "
                   "REFERENCES activities (id, user_id) ON DELETE CASCADE")


def _upgrade_sqlite() -> None:
    for table, (owner, new, _, _) in OWNED.items():
        if new:
            op.add_column(table, sa.Column(owner, sa.Integer(), nullable=True))
        _fill(table, owner)
        with op.batch_alter_table(table, recreate="always") as batch:
            if new:
                batch.alter_column(owner, existing_type=sa.Integer(), nullable=False)
            batch.drop_constraint(_fk(table), type_="foreignkey")
            batch.create_foreign_key(_fk(table), "activities", ["activity_id", owner], ["id", "user_id"],
                                     ondelete="CASCADE")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        for table in (*OWNED, *KEYED):
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {_fk(table)}")
        keys = {t: (before, after) for t, (_, _, before, after) in OWNED.items()} | UNREFERENCED
        for table, (before, _) in keys.items():
            op.execute(f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}")
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY ({before})")
        op.execute("ALTER TABLE activities DROP CONSTRAINT pk_activities")
        op.execute("ALTER TABLE activities ADD CONSTRAINT pk_activities PRIMARY KEY (id)")
        op.create_index('uq_activities_id_user_id', 'activities', ['id', 'user_id'], unique=True)
        for table, owner in KEYED.items():
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {_fk(table)} FOREIGN KEY (activity_id, {owner}) "
                       "REFERENCES activities (id, user_id) ON DELETE CASCADE")
        for table, column in SET_NULL.items():
            op.execute(f"UPDATE {table} SET {column} = NULL WHERE {column} NOT IN (SELECT id FROM activities)")
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {_fk(table, column)} FOREIGN KEY ({column}) "
                       "REFERENCES activities (id) ON DELETE SET NULL")
        for table, (owner, new, _, _) in OWNED.items():
            if new:
                op.drop_column(table, owner)
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {_fk(table)} FOREIGN KEY (activity_id) "
                       "REFERENCES activities (id) ON DELETE CASCADE")
        return
    for table, (owner, new, _, _) in OWNED.items():
        with op.batch_alter_table(table, recreate="always") as batch:
            batch.drop_constraint(_fk(table), type_="foreignkey")
            if new:
                batch.drop_column(owner)
            batch.create_foreign_key(_fk(table), "activities", ["activity_id"], ["id"], ondelete="CASCADE")
