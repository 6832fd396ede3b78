"""Leases: sync_leases.heartbeat_at, when the holder last proved it is alive.

A sync renews its lease from a heartbeat task (not only between batches), so the lease TTL can be
short; ``brokersync unlock`` reads this column to refuse freeing a lease whose holder is alive.
Existing leases keep NULL ("no heartbeat seen"): their acquisition time stands in for it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-20
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from brokersync._store._types import UTCDateTime

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("sync_leases", sa.Column("heartbeat_at", UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("sync_leases") as batch:
        batch.drop_column("heartbeat_at")
