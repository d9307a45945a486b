"""pending crops: with Redis, an athlete's crop is scored again by the scorers of the stream
instead of in the athlete's request; the crops waiting for their new score

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 06:00:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pending_crops',
        sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('crops', sa.JSON(), nullable=False),
        sa.Column('version', sa.String(length=32), nullable=False),
        sa.Column('cropped_at', core.storage.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['activity_id', 'user_id'], ['activities.id', 'activities.user_id'],
                                name=op.f('fk_pending_crops_activity_id_activities'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('activity_id', 'user_id', name=op.f('pk_pending_crops')),
    )


def downgrade() -> None:
    op.drop_table('pending_crops')
