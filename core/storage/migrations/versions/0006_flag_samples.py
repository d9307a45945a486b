"""random samples of cleared activities for the moderators

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

OLD = "status IN ('clear', 'flagged', 'dismissed', 'confirmed', 'crop_requested', 'cropped')"
NEW = "status IN ('clear', 'flagged', 'dismissed', 'confirmed', 'crop_requested', 'cropped', 'sampled')"


def upgrade() -> None:
    with op.batch_alter_table('activity_flags', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_activity_flags_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_activity_flags_status'), NEW)
    with op.batch_alter_table('moderation_decisions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sample', sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    # A sample nobody has decided on yet was scored clear.
    op.execute("UPDATE activity_flags SET status = 'clear' WHERE status = 'sampled'")
    with op.batch_alter_table('moderation_decisions', schema=None) as batch_op:
        batch_op.drop_column('sample')
    with op.batch_alter_table('activity_flags', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_activity_flags_status'), type_='check')
        batch_op.create_check_constraint(op.f('ck_activity_flags_status'), OLD)
