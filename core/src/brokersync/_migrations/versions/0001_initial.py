"""Initial schema: connections, accounts, sync cursors, trades, sync runs, leases.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from brokersync._store._types import Money, UTCDateTime

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("broker", sa.String(63), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("credentials", sa.Text()),
        sa.Column("token", sa.Text()),
        sa.Column("token_expires_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_sync_at", UTCDateTime()),
        sa.Column("last_sync_status", sa.String(16)),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("id", name="pk_connections"),
    )
    op.create_index("ix_connections_user_id", "connections", ["user_id"])
    op.create_table(
        "accounts",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255)),
        sa.Column("currency", sa.String(3)),
        sa.Column("type", sa.String(63)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name="fk_accounts_connection_id_connections", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("connection_id", "account_id", name="pk_accounts"),
    )
    op.create_table(
        "sync_cursors",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("watermark", UTCDateTime()),
        sa.Column("cursor", sa.Text()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id", "account_id"],
            ["accounts.connection_id", "accounts.account_id"],
            name="fk_sync_cursors_connection_id_accounts",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "account_id", name="pk_sync_cursors"),
    )
    op.create_table(
        "trades",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("broker_trade_id", sa.String(255), nullable=False),
        sa.Column("symbol", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime()),
        sa.Column("entry_price", Money(), nullable=False),
        sa.Column("exit_price", Money()),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("realized_pnl", Money()),
        sa.Column("fees", Money(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"], ["connections.id"], name="fk_trades_connection_id_connections", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_trades"),
        sa.UniqueConstraint(
            "connection_id", "account_id", "broker_trade_id", name="uq_trades_connection_id_account_id_broker_trade_id"
        ),
    )
    op.create_index("ix_trades_connection_id_opened_at", "trades", ["connection_id", "opened_at"])
    op.create_table(
        "sync_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("broker", sa.String(63), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("duration_ms", sa.Integer()),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("error_count", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("rate_limit_waits", sa.Integer(), nullable=False),
        sa.Column("rate_limit_wait_ms", sa.Integer(), nullable=False),
        sa.Column("error_type", sa.String(16)),
        sa.Column("error_message", sa.Text()),
        sa.Column("record_errors", sa.Text()),
        sa.Column("holder", sa.String(64)),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
    )
    op.create_index("ix_sync_runs_connection_id", "sync_runs", ["connection_id"])
    op.create_table(
        "sync_leases",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(36)),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("connection_id", name="pk_sync_leases"),
    )


def downgrade() -> None:
    op.drop_table("sync_leases")
    op.drop_index("ix_sync_runs_connection_id", table_name="sync_runs")
    op.drop_table("sync_runs")
    op.drop_index("ix_trades_connection_id_opened_at", table_name="trades")
    op.drop_table("trades")
    op.drop_table("sync_cursors")
    op.drop_table("accounts")
    op.drop_index("ix_connections_user_id", table_name="connections")
    op.drop_table("connections")
