"""routes found in public activities

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 18:30:00
"""
import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('routes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('shape', sa.LargeBinary(), nullable=False),
    sa.Column('representative_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('polyline', sa.JSON(), nullable=False),
    sa.Column('start_lat', sa.Float(), nullable=True),
    sa.Column('start_lon', sa.Float(), nullable=True),
    sa.Column('cells', sa.Integer(), nullable=False),
    sa.Column('path_m', sa.Float(), nullable=False),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('elevation_gain_m', sa.Float(), nullable=True),
    sa.Column('hilliness_m_per_km', sa.Float(), nullable=True),
    sa.Column('turns_per_km', sa.Float(), nullable=False),
    sa.Column('stops_per_km', sa.Float(), nullable=True),
    sa.Column('pace_ratio', sa.Float(), nullable=True),
    sa.Column('speeds', sa.JSON(), nullable=False),
    sa.Column('sports', sa.JSON(), nullable=False),
    sa.Column('athletes', sa.Integer(), nullable=False),
    sa.Column('activities', sa.Integer(), nullable=False),
    sa.Column('last_done_at', core.storage.base.UTCDateTime(), nullable=True),
    sa.Column('created_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('updated_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.Column('dirty', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.CheckConstraint("kind IN ('loop', 'out_and_back', 'one_way')", name=op.f('ck_routes_kind')),
    sa.ForeignKeyConstraint(['representative_id'], ['activities.id'], name=op.f('fk_routes_representative_id_activities'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_routes'))
    )
    with op.batch_alter_table('routes', schema=None) as batch_op:
        batch_op.create_index('ix_routes_dirty', ['dirty'], unique=False)
        batch_op.create_index('ix_routes_representative', ['representative_id'], unique=False)
        batch_op.create_index('ix_routes_start', ['start_lat', 'start_lon'], unique=False)

    op.create_table('route_activities',
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('route_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('direction', sa.SmallInteger(), nullable=False),
    sa.Column('counted', sa.Boolean(), nullable=False),
    sa.Column('visibility', sa.String(length=16), nullable=False),
    sa.Column('held', sa.Boolean(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('start_lat', sa.Float(), nullable=True),
    sa.Column('start_lon', sa.Float(), nullable=True),
    sa.Column('end_lat', sa.Float(), nullable=True),
    sa.Column('end_lon', sa.Float(), nullable=True),
    sa.Column('trim_dx_m', sa.Float(), nullable=True),
    sa.Column('trim_dy_m', sa.Float(), nullable=True),
    sa.Column('matched_at', core.storage.base.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_route_activities_activity_id_activities'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_route_activities_route_id_routes'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_route_activities_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('activity_id', name=op.f('pk_route_activities'))
    )
    with op.batch_alter_table('route_activities', schema=None) as batch_op:
        batch_op.create_index('ix_route_activities_route', ['route_id', 'counted'], unique=False)
        batch_op.create_index('ix_route_activities_unmatched', ['route_id', 'start_lat'], unique=False)
        batch_op.create_index('ix_route_activities_user', ['user_id', 'route_id'], unique=False)

    op.create_table('route_cells',
    sa.Column('cell', sa.BigInteger(), nullable=False),
    sa.Column('route_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['route_id'], ['routes.id'], name=op.f('fk_route_cells_route_id_routes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('cell', 'route_id', name=op.f('pk_route_cells'))
    )
    with op.batch_alter_table('route_cells', schema=None) as batch_op:
        batch_op.create_index('ix_route_cells_route', ['route_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('route_cells', schema=None) as batch_op:
        batch_op.drop_index('ix_route_cells_route')

    op.drop_table('route_cells')
    with op.batch_alter_table('route_activities', schema=None) as batch_op:
        batch_op.drop_index('ix_route_activities_user')
        batch_op.drop_index('ix_route_activities_unmatched')
        batch_op.drop_index('ix_route_activities_route')

    op.drop_table('route_activities')
    with op.batch_alter_table('routes', schema=None) as batch_op:
        batch_op.drop_index('ix_routes_start')
        batch_op.drop_index('ix_routes_representative')
        batch_op.drop_index('ix_routes_dirty')

    op.drop_table('routes')
