"""Alembic migrations for the brokersync store (run programmatically by ``brokersync._store``)."""
