"""badge activity route: what the badge job saw of each activity keeps the route it was
counted with (a route found later makes the athlete due for a recount) and, for an
activity dated ahead, when it starts to count (the athlete is due again then)

Existing rows get no route: every athlete with an activity on a route is recounted once,
which awards what a route found after the job saw the activity held back. The rows of
activities seen while dated more than a day ahead get the time they start to count.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-05 17:10:00
"""
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

import core.storage.base


revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None

AHEAD = timedelta(days=1)  # an activity dated later than a day after now counts for nothing


def upgrade() -> None:
    op.add_column('badge_activities', sa.Column('route_id', sa.Integer(), nullable=True))
    op.add_column('badge_activities', sa.Column('counts_from', core.storage.base.UTCDateTime(), nullable=True))
    op.create_index('ix_badge_activities_counts_from', 'badge_activities', ['counts_from'], unique=False)
    t = sa.table('badge_activities', sa.column('activity_id', sa.Integer()),
                 sa.column('start_time', core.storage.base.UTCDateTime()),
                 sa.column('seen_at', core.storage.base.UTCDateTime()),
                 sa.column('counts_from', core.storage.base.UTCDateTime()))
    bind = op.get_bind()
    ahead = [{"id": r.activity_id, "since": r.start_time - AHEAD}
             for r in bind.execute(sa.select(t.c.activity_id, t.c.start_time, t.c.seen_at)
                                   .where(t.c.start_time > t.c.seen_at))
             if r.start_time - AHEAD > r.seen_at]
    if ahead:
        bind.execute(t.update().where(t.c.activity_id == sa.bindparam('id'))
                     .values(counts_from=sa.bindparam('since')), ahead)


def downgrade() -> None:
    op.drop_index('ix_badge_activities_counts_from', table_name='badge_activities')
    op.drop_column('badge_activities', 'counts_from')
    op.drop_column('badge_activities', 'route_id')
