"""Alembic environment: the engine comes from the caller (`hub.store.db.migrate`), or from HUB_DATABASE_URL."""

from alembic import context
from sqlalchemy import Engine

from hub.store.models import Base

config = context.config
engine: Engine | None = config.attributes.get("engine")
if engine is None:
    from hub.core.config import Settings
    from hub.store.db import make_engine

    engine = make_engine(Settings().effective_database_url)

with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
