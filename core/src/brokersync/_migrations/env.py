"""Alembic environment: runs on the connection brokersync hands over (no ini file, no URL here)."""

from __future__ import annotations

from alembic import context

from brokersync._store._schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "brokersync migrations run through brokersync (BrokerSync.upgrade_database() or `brokersync db upgrade`), "
        "not the alembic command line"
    )

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things: batch mode
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
