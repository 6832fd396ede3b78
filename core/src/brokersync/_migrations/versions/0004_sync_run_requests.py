"""Monitoring: sync_runs.requests (HTTP requests per run) and an index on sync_runs.started_at.

The request count is the denominator of the retry and rate-limit hit rates. Existing audit rows did
not record it: they keep NULL ("unknown"), never 0, so rates over them are unknown rather than wrong.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("sync_runs", sa.Column("requests", sa.Integer()))
    op.create_index("ix_sync_runs_started_at", "sync_runs", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_sync_runs_started_at", table_name="sync_runs")
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("requests")
