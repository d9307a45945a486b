"""follow requests for athletes who approve their followers, and blocks

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 11:20:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('follow_requests',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('created_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint('user_id <> target_id', name=op.f('ck_follow_requests_not_self')),
    sa.ForeignKeyConstraint(['target_id'], ['users.id'], name=op.f('fk_follow_requests_target_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_follow_requests_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'target_id', name=op.f('pk_follow_requests'))
    )
    with op.batch_alter_table('follow_requests', schema=None) as batch_op:
        batch_op.create_index('ix_follow_requests_target', ['target_id', 'created_at'], unique=False)

    op.create_table('blocks',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('blocked_id', sa.Integer(), nullable=False),
    sa.Column('created_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint('user_id <> blocked_id', name=op.f('ck_blocks_not_self')),
    sa.ForeignKeyConstraint(['blocked_id'], ['users.id'], name=op.f('fk_blocks_blocked_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_blocks_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'blocked_id', name=op.f('pk_blocks'))
    )
    with op.batch_alter_table('blocks', schema=None) as batch_op:
        batch_op.create_index('ix_blocks_blocked_id', ['blocked_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('blocks', schema=None) as batch_op:
        batch_op.drop_index('ix_blocks_blocked_id')

    op.drop_table('blocks')
    with op.batch_alter_table('follow_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_follow_requests_target')

    op.drop_table('follow_requests')
