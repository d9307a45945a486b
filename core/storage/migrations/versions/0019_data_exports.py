"""data exports: an athlete's archive of their data, built in the background and kept for a while

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 15:10:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('error', sa.String(length=256), nullable=True),
    sa.Column('requested_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('started_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.Column('finished_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.Column('expires_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.Column('claim', sa.String(length=32), nullable=True),
    sa.Column('beat_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.CheckConstraint("status IN ('queued', 'building', 'ready', 'failed')", name=op.f('ck_data_exports_status')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_data_exports_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_data_exports'))
    )
    with op.batch_alter_table('data_exports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_data_exports_user_id'), ['user_id'], unique=False)
        batch_op.create_index('uq_data_exports_waiting', ['user_id'], unique=True,
                              sqlite_where=sa.text("status IN ('queued', 'building')"),
                              postgresql_where=sa.text("status IN ('queued', 'building')"))


def downgrade() -> None:
    with op.batch_alter_table('data_exports', schema=None) as batch_op:
        batch_op.drop_index('uq_data_exports_waiting')
        batch_op.drop_index(batch_op.f('ix_data_exports_user_id'))

    op.drop_table('data_exports')
