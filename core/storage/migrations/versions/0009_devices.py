"""device tracks, fix hints, device token sport

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 21:25:42
"""
import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # device_tokens first: on SQLite the batch copies it into a new table, before anything
    # refers to it from the new tables.
    with op.batch_alter_table('device_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sport', sa.String(length=8), nullable=True))
        batch_op.create_check_constraint(op.f('ck_device_tokens_sport'), "sport IS NULL OR sport IN ('run', 'ride')")

    op.create_table('device_tracks',
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=False),
    sa.Column('anchor_t', sa.Float(), nullable=False),
    sa.Column('first_t', sa.Float(), nullable=False),
    sa.Column('last_t', sa.Float(), nullable=False),
    sa.Column('heard_at', sa.Float(), nullable=False),
    sa.Column('sport_inferred', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('recompute', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_device_tracks_activity_id_activities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['token_id'], ['device_tokens.id'], name=op.f('fk_device_tracks_token_id_device_tokens'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id', name=op.f('pk_device_tracks'))
    )
    with op.batch_alter_table('device_tracks', schema=None) as batch_op:
        batch_op.create_index('ix_device_tracks_recompute', ['recompute'], unique=False)
        batch_op.create_index('ix_device_tracks_token_last', ['token_id', 'last_t'], unique=False)

    op.create_table('fix_hints',
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('is_moving', sa.Boolean(), nullable=True),
    sa.Column('motion', sa.String(length=24), nullable=True),
    sa.Column('speed_mps', sa.Float(), nullable=True),
    sa.Column('bearing', sa.Float(), nullable=True),
    sa.Column('battery', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_fix_hints_activity_id_activities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id', 'seq', name=op.f('pk_fix_hints'))
    )


def downgrade() -> None:
    op.drop_table('fix_hints')
    with op.batch_alter_table('device_tracks', schema=None) as batch_op:
        batch_op.drop_index('ix_device_tracks_token_last')
        batch_op.drop_index('ix_device_tracks_recompute')

    op.drop_table('device_tracks')
    with op.batch_alter_table('device_tokens', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_device_tokens_sport'), type_='check')
        batch_op.drop_column('sport')
