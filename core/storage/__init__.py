"""Storage: the engine and sessions, the declarative base, the Alembic migrations, and the one
module that writes and reads route points (``core.storage.points``)."""
