"""privacy zones: the athlete's point and radius, and the secretly offset circle that is hidden

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 11:40:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('privacy_zones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('radius_m', sa.Float(), nullable=False),
    sa.Column('hidden_lat', sa.Float(), nullable=False),
    sa.Column('hidden_lon', sa.Float(), nullable=False),
    sa.Column('hidden_radius_m', sa.Float(), nullable=False),
    sa.Column('created_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint('radius_m >= 200 AND radius_m <= 1600', name=op.f('ck_privacy_zones_radius')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_privacy_zones_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_privacy_zones'))
    )
    with op.batch_alter_table('privacy_zones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_privacy_zones_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('privacy_zones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_privacy_zones_user_id'))

    op.drop_table('privacy_zones')
