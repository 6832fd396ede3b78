"""Executions and pairing: executions, their tombstones, open lots, pairing state, round trips, positions.

Existing data is untouched: trades stay where they are (derived round trips are stored as ordinary
trades), and existing connections get ``pairing_method`` NULL, which means FIFO.

``trades.currency`` widens from 3 to 12 characters (what ``Trade.currency`` accepts: ISO codes and
crypto tickers such as ``USDT``; PostgreSQL enforced the 3). On SQLite, which never enforced the
length, batch mode rebuilds ``trades`` (nothing references it) so the declared schema matches.
A downgrade keeps the column wide: narrowing it would fail on a stored ``USDT`` round trip, and
revision 0004's code works with the wider column.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from brokersync._store._types import Money, UTCDateTime

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("trades") as batch:
        batch.alter_column("currency", type_=sa.String(12), existing_type=sa.String(3), existing_nullable=False)
    op.add_column("connections", sa.Column("pairing_method", sa.String(8)))
    op.create_table(
        "executions",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("broker_execution_id", sa.String(255), nullable=False),
        sa.Column("instrument_key", sa.String(255), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("executed_at", UTCDateTime(), nullable=False),
        sa.Column("fees", Money(), nullable=False),
        sa.Column("fee_currency", sa.String(12)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("order_id", sa.String(255)),
        sa.Column("open_close", sa.String(16)),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_executions_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "account_id", "broker_execution_id", name="pk_executions"),
    )
    op.create_index(
        "ix_executions_instrument_order",
        "executions",
        ["connection_id", "account_id", "instrument_key", "executed_at", "broker_execution_id"],
    )
    op.create_table(
        "execution_cancellations",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("broker_execution_id", sa.String(255), nullable=False),
        sa.Column("cancelled_at", UTCDateTime(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_execution_cancellations_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "connection_id", "account_id", "broker_execution_id", name="pk_execution_cancellations"
        ),
    )
    op.create_table(
        "open_lots",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("instrument_key", sa.String(255), nullable=False),
        sa.Column("broker_execution_id", sa.String(255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("price", Money(), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("fees", Money(), nullable=False),
        sa.Column("fee_quantum", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_open_lots_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "connection_id", "account_id", "instrument_key", "broker_execution_id", name="pk_open_lots"
        ),
    )
    op.create_table(
        "pairing_state",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("instrument_key", sa.String(255), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("last_executed_at", UTCDateTime(), nullable=False),
        sa.Column("last_execution_id", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_pairing_state_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "account_id", "instrument_key", name="pk_pairing_state"),
    )
    op.create_table(
        "round_trips",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("broker_trade_id", sa.String(255), nullable=False),
        sa.Column("instrument_key", sa.String(255), nullable=False),
        sa.Column("opening_execution_id", sa.String(255), nullable=False),
        sa.Column("closing_execution_id", sa.String(255), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_round_trips_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "account_id", "broker_trade_id", name="pk_round_trips"),
    )
    op.create_index("ix_round_trips_instrument", "round_trips", ["connection_id", "account_id", "instrument_key"])
    op.create_table(
        "position_snapshots",
        sa.Column("connection_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(255), nullable=False),
        sa.Column("instrument_key", sa.String(255), nullable=False),
        sa.Column("instrument", sa.Text(), nullable=False),
        sa.Column("quantity", Money(), nullable=False),
        sa.Column("average_price", Money(), nullable=False),
        sa.Column("opened_at", UTCDateTime()),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["connections.id"],
            name="fk_position_snapshots_connection_id_connections",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "account_id", "instrument_key", name="pk_position_snapshots"),
    )


def downgrade() -> None:
    op.drop_index("ix_executions_instrument_order", table_name="executions")
    op.drop_index("ix_round_trips_instrument", table_name="round_trips")
    op.drop_table("position_snapshots")
    op.drop_table("round_trips")
    op.drop_table("pairing_state")
    op.drop_table("open_lots")
    op.drop_table("execution_cancellations")
    op.drop_table("executions")
    # Not batch mode: on SQLite that copies and drops ``connections``, and the drop would cascade to
    # every trade. SQLite >= 3.35 (which the upserts already need) drops a column in place.
    op.execute("ALTER TABLE connections DROP COLUMN pairing_method")
