"""badge awards and what the awarding job saw

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 05:21:03
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('badge_activities',
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('held', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('start_time', core.storage.base.UTCDateTime(), nullable=True),
    sa.Column('seen_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_badge_activities_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id', name=op.f('pk_badge_activities'))
    )
    with op.batch_alter_table('badge_activities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_badge_activities_user_id'), ['user_id'], unique=False)

    op.create_table('badge_awards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('earned_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('awarded_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('withdrawn_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.Column('withdrawn_reason', sa.Text(), nullable=True),
    sa.Column('withdrawn_activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_badge_awards_activity_id_activities'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_badge_awards_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_badge_awards'))
    )
    with op.batch_alter_table('badge_awards', schema=None) as batch_op:
        batch_op.create_index('ix_badge_awards_activity', ['activity_id'], unique=False)
        batch_op.create_index('ix_badge_awards_withdrawn', ['withdrawn_activity_id'], unique=False)
        batch_op.create_index('uq_badge_awards_user_code', ['user_id', 'code'], unique=True)



def downgrade() -> None:
    with op.batch_alter_table('badge_awards', schema=None) as batch_op:
        batch_op.drop_index('uq_badge_awards_user_code')
        batch_op.drop_index('ix_badge_awards_withdrawn')
        batch_op.drop_index('ix_badge_awards_activity')

    op.drop_table('badge_awards')
    with op.batch_alter_table('badge_activities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_badge_activities_user_id'))

    op.drop_table('badge_activities')
