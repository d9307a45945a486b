"""login throttling, crops awaiting review

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 08:00:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OLD = "status IN ('clear', 'flagged', 'dismissed', 'confirmed', 'crop_requested')"
NEW = "status IN ('clear', 'flagged', 'dismissed', 'confirmed', 'crop_requested', 'cropped')"


def upgrade() -> None:
    op.create_table('login_attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('at', core.storage.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_attempts'))
    )
    op.create_index('ix_login_attempts_key_at', 'login_attempts', ['key', 'at'])
    with op.batch_alter_table('activity_flags', schema=None) as batch_op:
        batch_op.add_column(sa.Column('crop', sa.JSON(), nullable=True))
        batch_op.drop_constraint(op.f('ck_activity_flags_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_activity_flags_status'), NEW)


def downgrade() -> None:
    op.execute("UPDATE activity_flags SET status = 'crop_requested' WHERE status = 'cropped'")
    with op.batch_alter_table('activity_flags', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_activity_flags_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_activity_flags_status'), OLD)
        batch_op.drop_column('crop')
    op.drop_index('ix_login_attempts_key_at', table_name='login_attempts')
    op.drop_table('login_attempts')
