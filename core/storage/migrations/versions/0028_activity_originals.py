"""activity originals: the file an activity was imported from, kept gzipped in the archive
for the athlete's data export; the row names it

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-05 12:00:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'activity_originals',
        sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('stored_bytes', sa.BigInteger(), nullable=False),
        sa.Column('file', sa.String(length=64), nullable=False),
        sa.Column('created_at', core.storage.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['activity_id', 'user_id'], ['activities.id', 'activities.user_id'],
                                name=op.f('fk_activity_originals_activity_id_activities'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('activity_id', 'user_id', name=op.f('pk_activity_originals')),
    )
    op.create_index('ix_activity_originals_file', 'activity_originals', ['user_id', 'file'])


def downgrade() -> None:
    op.drop_index('ix_activity_originals_file', table_name='activity_originals')
    op.drop_table('activity_originals')
