"""Alembic environment: runs on the connection handed over by core.storage.schema.migrate."""

from alembic import context

import core.accounts.tables  # noqa: F401  (every table, for autogenerate)
import core.activities.tables  # noqa: F401
import core.anomaly.tables  # noqa: F401
import core.challenges.tables  # noqa: F401
import core.devices.tables  # noqa: F401
import core.recommend.tables  # noqa: F401
import core.routes.tables  # noqa: F401
import core.social.tables  # noqa: F401
import core.storage.points  # noqa: F401
from core.storage.base import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
