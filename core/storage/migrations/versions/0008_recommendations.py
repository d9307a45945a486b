"""route signals, discovery settings, suggestions

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:00:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('recommender_state',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('trained_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_recommender_state'))
    )
    op.create_table('discovery_settings',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('sport', sa.String(length=8), nullable=True),
    sa.Column('usual_distance_m', sa.Float(), nullable=True),
    sa.Column('terrain', sa.String(length=8), nullable=False),
    sa.Column('area_lat', sa.Float(), nullable=True),
    sa.Column('area_lon', sa.Float(), nullable=True),
    sa.Column('discoverable', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.Column('updated_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("terrain IN ('flat', 'hilly', 'any')", name=op.f('ck_discovery_settings_terrain')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_discovery_settings_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_discovery_settings'))
    )
    op.create_table('route_signals',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("kind IN ('rating', 'save', 'dismiss')", name=op.f('ck_route_signals_kind')),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_route_signals_route_id_routes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_route_signals_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'route_id', 'kind', name=op.f('pk_route_signals'))
    )
    with op.batch_alter_table('route_signals', schema=None) as batch_op:
        batch_op.create_index('ix_route_signals_route', ['route_id'], unique=False)

    op.create_table('route_suggestions',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('route_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('computed_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.CheckConstraint("source IN ('content', 'popular', 'collaborative', 'friends')", name=op.f('ck_route_suggestions_source')),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_route_suggestions_route_id_routes'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_route_suggestions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'route_id', name=op.f('pk_route_suggestions'))
    )
    with op.batch_alter_table('route_suggestions', schema=None) as batch_op:
        batch_op.create_index('ix_route_suggestions_rank', ['user_id', 'rank'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('route_suggestions', schema=None) as batch_op:
        batch_op.drop_index('ix_route_suggestions_rank')

    op.drop_table('route_suggestions')
    with op.batch_alter_table('route_signals', schema=None) as batch_op:
        batch_op.drop_index('ix_route_signals_route')

    op.drop_table('route_signals')
    op.drop_table('discovery_settings')
    op.drop_table('recommender_state')
