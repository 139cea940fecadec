"""Alembic environment: genloop passes an open connection in `config.attributes`."""

from alembic import context

from genloop.catalog.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - genloop always passes one
    raise RuntimeError("genloop migrations run through genloop.catalog.session.Catalog.migrate()")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
