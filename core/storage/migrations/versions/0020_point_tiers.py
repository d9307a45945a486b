"""storage tiers: where each activity's points are (database or archive), and its reads while archived

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 15:20:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('points_tier', sa.String(length=8), server_default='hot', nullable=False))
        batch_op.add_column(sa.Column('cold_reads', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('cold_read_at', core.storage.base.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('cold_file', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_activities_tier', ['points_tier', 'start_time'], unique=False)


def downgrade() -> None:
    archived = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM activities WHERE points_tier = 'cold'")).scalar()
    if archived:
        raise RuntimeError(f"{archived} activities have their points in the archive: bring them back first "
                           "(TRACKER_TIER_HOT_READS=0 python -m core tiers run --older-than 1000000)")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35 and later have it): rebuilding the
    # activities table, as batch mode would, drops it first, and with it, through ON DELETE
    # CASCADE, every row that refers to an activity.
    op.drop_index('ix_activities_tier', table_name='activities')
    for column in ('cold_file', 'cold_read_at', 'cold_reads', 'points_tier'):
        op.drop_column('activities', column)
