"""anomaly flags and moderation decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:05:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held', sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table('activity_flags',
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('sport', sa.String(length=8), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reasons', sa.JSON(), nullable=False),
    sa.Column('codes', sa.String(length=200), nullable=False),
    sa.Column('verdict', sa.JSON(), nullable=False),
    sa.Column('features', sa.JSON(), nullable=False),
    sa.Column('fingerprint', sa.JSON(), nullable=True),
    sa.Column('centroid_lat', sa.Float(), nullable=True),
    sa.Column('centroid_lon', sa.Float(), nullable=True),
    sa.Column('model_version', sa.String(length=64), nullable=False),
    sa.Column('scored_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("status IN ('clear', 'flagged', 'dismissed', 'confirmed', 'crop_requested')", name=op.f('ck_activity_flags_status')),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_activity_flags_activity_id_activities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_activity_flags_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id', name=op.f('pk_activity_flags'))
    )
    op.create_index('ix_activity_flags_queue', 'activity_flags', ['status', 'score'])
    op.create_index('ix_activity_flags_user', 'activity_flags', ['user_id', 'sport'])
    op.create_index('ix_activity_flags_centroid', 'activity_flags', ['centroid_lat'])
    op.create_table('moderation_decisions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('moderator_id', sa.Integer(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('created_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("action IN ('dismiss', 'confirm', 'request_crop')", name=op.f('ck_moderation_decisions_action')),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_moderation_decisions_activity_id_activities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['moderator_id'], ['users.id'], name=op.f('fk_moderation_decisions_moderator_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_moderation_decisions'))
    )
    op.create_index('ix_moderation_decisions_activity_id', 'moderation_decisions', ['activity_id'])


def downgrade() -> None:
    op.drop_index('ix_moderation_decisions_activity_id', table_name='moderation_decisions')
    op.drop_table('moderation_decisions')
    op.drop_index('ix_activity_flags_centroid', table_name='activity_flags')
    op.drop_index('ix_activity_flags_user', table_name='activity_flags')
    op.drop_index('ix_activity_flags_queue', table_name='activity_flags')
    op.drop_table('activity_flags')
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_column('held')
