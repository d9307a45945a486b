"""when each athlete is next due for the weekly challenge assignment

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 06:19:35
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('challenge_schedule',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('next_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_challenge_schedule_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_challenge_schedule'))
    )
    with op.batch_alter_table('challenge_schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_challenge_schedule_next_at'), ['next_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('challenge_schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_challenge_schedule_next_at'))

    op.drop_table('challenge_schedule')
