"""adaptive challenge policy state and churn risks

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 08:57:16
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('challenge_policies',
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('outcomes', sa.Integer(), nullable=False),
    sa.Column('updated_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_challenge_policies'))
    )
    op.create_table('engagement_risks',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('risk', sa.Float(), nullable=False),
    sa.Column('scored_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_engagement_risks_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_engagement_risks'))
    )
    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('context', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('learned_at', core.storage.base.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_challenges_policy_learned', ['policy', 'learned_at', 'deadline'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('challenges', schema=None) as batch_op:
        batch_op.drop_index('ix_challenges_policy_learned')
        batch_op.drop_column('learned_at')
        batch_op.drop_column('context')

    op.drop_table('engagement_risks')
    op.drop_table('challenge_policies')
