"""shown distance: what others are shown of each activity's distance, so that boards add up
only that and their totals tell nothing of the parts athletes hide; worked out by the worker
for the activities already stored

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 23:00:00
"""
import sqlalchemy as sa
from alembic import op


revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

UNSHOWN = "shown_distance_m IS NULL AND status = 'completed'"


def upgrade() -> None:
    # Plain ALTER TABLE, never a rebuild of the activities table (see downgrade).
    op.add_column('activities', sa.Column('shown_distance_m', sa.Float(), nullable=True))
    op.create_index('ix_activities_unshown', 'activities', ['user_id'], unique=False,
                    sqlite_where=sa.text(UNSHOWN), postgresql_where=sa.text(UNSHOWN))


def downgrade() -> None:
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later have it): rebuilding the
    # activities table, as batch mode would, drops it first, and with it, through ON DELETE
    # CASCADE, every row that refers to an activity.
    op.drop_index('ix_activities_unshown', table_name='activities')
    op.drop_column('activities', 'shown_distance_m')
