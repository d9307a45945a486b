"""recompute failures: a completed activity whose recomputation after a late fix failed
waits, written down, and is given up on after a few attempts, instead of being tried again
by every worker for ever; and which moderator last had a given-up scoring tried again

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 17:00:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('device_tracks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recompute_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('recompute_error', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('recompute_retry_at', core.storage.base.UTCDateTime(), nullable=True))
    with op.batch_alter_table('scoring_failures', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retried_by', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('retried_at', core.storage.base.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_scoring_failures_retried_by_users'), 'users', ['retried_by'], ['id'],
                                    ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('scoring_failures', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_scoring_failures_retried_by_users'), type_='foreignkey')
        batch_op.drop_column('retried_at')
        batch_op.drop_column('retried_by')
    with op.batch_alter_table('device_tracks', schema=None) as batch_op:
        batch_op.drop_column('recompute_retry_at')
        batch_op.drop_column('recompute_error')
        batch_op.drop_column('recompute_attempts')
