"""Cancelled (busted) trades: the trade_cancellations tombstone table and sync_runs.cancelled.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from brokersync._store._types import UTCDateTime

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "trade_cancellations",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("broker_trade_id", sa.String(255), nullable=False),
        sa.Column("cancelled_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_trade_cancellations_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "account_id", "broker_trade_id", name="pk_trade_cancellations"),
    )
    # Existing audit rows recorded no cancellation: 0 is true for them.
    op.add_column("sync_runs", sa.Column("cancelled", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("cancelled")
    op.drop_table("trade_cancellations")
