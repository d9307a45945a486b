"""weekly personal challenges; the flag status each badge snapshot saw

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 05:58:16
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('challenges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('week', sa.String(length=8), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('sport', sa.String(length=8), nullable=True),
    sa.Column('target', sa.Float(), nullable=False),
    sa.Column('usual', sa.Float(), nullable=False),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('policy', sa.String(length=16), nullable=False),
    sa.Column('starts_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('deadline', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('progress', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('decline_reason', sa.String(length=12), nullable=True),
    sa.Column('completed_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.Column('completed_by', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("decline_reason IS NULL OR decline_reason IN ('too_hard', 'too_easy', 'not_now')", name=op.f('ck_challenges_decline_reason')),
    sa.CheckConstraint("kind IN ('sessions', 'distance', 'climb')", name=op.f('ck_challenges_kind')),
    sa.CheckConstraint("status IN ('active', 'completed', 'missed', 'declined')", name=op.f('ck_challenges_status')),
    sa.ForeignKeyConstraint(['completed_by'], ['activities.id'], name=op.f('fk_challenges_completed_by_activities'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_challenges_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_challenges'))
    )
    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.create_index('ix_challenges_completed_by', ['completed_by'], unique=False)
        batch_op.create_index('ix_challenges_status_deadline', ['status', 'deadline'], unique=False)
        batch_op.create_index('uq_challenges_user_week_kind', ['user_id', 'week', 'kind'], unique=True)

    with op.batch_alter_table('badge_activities', schema=None) as batch_op:
        batch_op.add_column(sa.Column('flag', sa.String(length=16), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('badge_activities', schema=None) as batch_op:
        batch_op.drop_column('flag')

    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.drop_index('uq_challenges_user_week_kind')
        batch_op.drop_index('ix_challenges_status_deadline')
        batch_op.drop_index('ix_challenges_completed_by')

    op.drop_table('challenges')
