"""group challenges among athletes who follow each other, and their members

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 06:06:06
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('group_challenges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('sport', sa.String(length=8), nullable=True),
    sa.Column('target', sa.Float(), nullable=True),
    sa.Column('starts_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('ends_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('created_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('most_distance', 'everyone_sessions')", name=op.f('ck_group_challenges_kind')),
    sa.ForeignKeyConstraint(['creator_id'], ['users.id'], name=op.f('fk_group_challenges_creator_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_challenges'))
    )
    with op.batch_alter_table('group_challenges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_challenges_creator_id'), ['creator_id'], unique=False)

    op.create_table('group_members',
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('answered_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('invited', 'joined', 'declined')", name=op.f('ck_group_members_status')),
    sa.ForeignKeyConstraint(['group_id'], ['group_challenges.id'], name=op.f('fk_group_members_group_id_group_challenges'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_group_members_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('group_id', 'user_id', name=op.f('pk_group_members'))
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index('ix_group_members_user', ['user_id', 'status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index('ix_group_members_user')

    op.drop_table('group_members')
    with op.batch_alter_table('group_challenges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_challenges_creator_id'))

    op.drop_table('group_challenges')
