"""scoring failures: activities the detector failed to score, tried again later, and given
up on for a moderator after a few attempts, so that one cannot hold up the others

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 14:00:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('scoring_failures',
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.String(length=300), nullable=False),
    sa.Column('first_failed_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('failed_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('retry_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_scoring_failures_activity_id_activities'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_scoring_failures_user_id_users'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id', name=op.f('pk_scoring_failures'))
    )
    with op.batch_alter_table('scoring_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_scoring_failures_user_id'), ['user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_scoring_failures_retry_at'), ['retry_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('scoring_failures', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_scoring_failures_retry_at'))
        batch_op.drop_index(batch_op.f('ix_scoring_failures_user_id'))
    op.drop_table('scoring_failures')
