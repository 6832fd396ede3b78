"""The database schema (SQLAlchemy Core). Alembic migrations in ``brokersync._migrations`` create it.

Secrets live only in ``connections.credentials`` and ``connections.token``, and only as vault
ciphertext bound to the connection id. Nothing else holds a secret, in particular not ``sync_runs``.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from brokersync._store._types import Money, UTCDateTime

__all__ = [
    "accounts",
    "connections",
    "execution_cancellations",
    "executions",
    "metadata",
    "open_lots",
    "pairing_state",
    "position_snapshots",
    "round_trips",
    "sync_cursors",
    "sync_leases",
    "sync_runs",
    "trade_cancellations",
    "trades",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

connections = Table(
    "connections",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("user_id", String(255), nullable=False, index=True),
    Column("broker", String(63), nullable=False),
    Column("environment", String(63), nullable=False),
    Column("status", String(16), nullable=False),  # active | needs_reauth | disabled
    Column("credentials", Text),  # vault ciphertext, aad "<id>:credentials"; None once disconnected
    Column("token", Text),  # vault ciphertext, aad "<id>:token"
    Column("token_expires_at", UTCDateTime),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_sync_at", UTCDateTime),
    Column("last_sync_status", String(16)),
    Column("last_error", Text),  # redacted user message
    Column("pairing_method", String(8)),  # fifo | lifo for paired executions; NULL = fifo (revision 0005)
)

accounts = Table(
    "accounts",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("name", String(255)),
    Column("currency", String(12)),  # ISO codes and crypto tickers (revision 0007; 3 before)
    Column("type", String(63)),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

sync_cursors = Table(
    "sync_cursors",
    metadata,
    Column("connection_id", String(36), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("watermark", UTCDateTime),  # everything up to here is stored (a safe point)
    Column("cursor", Text),  # the plugin's opaque cursor, exactly as it returned it
    Column("updated_at", UTCDateTime, nullable=False),
    ForeignKeyConstraint(
        ["connection_id", "account_id"], ["accounts.connection_id", "accounts.account_id"], ondelete="CASCADE"
    ),
)

trades = Table(
    "trades",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", String(255), nullable=False),
    Column("broker_trade_id", String(255), nullable=False),
    Column("symbol", String(255), nullable=False),
    Column("direction", String(8), nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime),
    Column("entry_price", Money, nullable=False),
    Column("exit_price", Money),
    Column("quantity", Money, nullable=False),
    Column("realized_pnl", Money),
    Column("fees", Money, nullable=False),
    Column("currency", String(12), nullable=False),  # ISO codes and crypto tickers (USDT); revision 0005
    Column("raw", Text, nullable=False),  # the broker's record as JSON, for audit
    Column("fingerprint", String(32), nullable=False),  # hash of the normalized fields (not raw)
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("connection_id", "account_id", "broker_trade_id"),
    Index("ix_trades_connection_id_opened_at", "connection_id", "opened_at"),
)

# Tombstones: trades the broker cancelled (busted). One per (connection, account, broker trade id),
# whether or not the trade itself is stored (a cancellation may arrive before its trade).
trade_cancellations = Table(
    "trade_cancellations",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("broker_trade_id", String(255), primary_key=True),
    Column("cancelled_at", UTCDateTime, nullable=False),  # when the broker cancelled it
    Column("reason", Text),
    Column("raw", Text, nullable=False),  # the broker's cancellation record as JSON, for audit
    Column("recorded_at", UTCDateTime, nullable=False),  # when brokersync first stored the tombstone
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("connection_id", String(36), nullable=False, index=True),  # kept after a disconnect: audit
    Column("user_id", String(255), nullable=False),
    Column("broker", String(63), nullable=False),
    Column("trigger", String(16), nullable=False),  # manual | scheduled
    Column("status", String(16), nullable=False),  # running | succeeded | partial | failed | interrupted
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("duration_ms", Integer),
    Column("imported", Integer, nullable=False, default=0),
    Column("skipped", Integer, nullable=False, default=0),
    Column("updated", Integer, nullable=False, default=0),
    Column("cancelled", Integer, nullable=False, default=0, server_default="0"),  # new tombstones
    Column("error_count", Integer, nullable=False, default=0),
    Column("retries", Integer, nullable=False, default=0),
    Column("rate_limit_waits", Integer, nullable=False, default=0),
    Column("rate_limit_wait_ms", Integer, nullable=False, default=0),
    Column("error_type", String(16)),
    Column("error_message", Text),  # redacted
    Column("record_errors", Text),  # JSON list of {account_id, broker_trade_id, reason}, redacted
    Column("holder", String(64)),  # which process ran it (host:pid:nonce)
    Column("requests", Integer),  # HTTP requests sent to the broker; NULL on rows before revision 0004
    Column("warnings", Text),  # JSON list of the run's data-quality warnings, redacted (revision 0007)
    Index("ix_sync_runs_started_at", "started_at"),  # sync_stats(since=...) reads a time window
)

sync_leases = Table(
    "sync_leases",
    metadata,
    Column("connection_id", String(36), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("run_id", String(36)),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("heartbeat_at", UTCDateTime),  # the holder's last sign of life (revision 0006; NULL before)
)


# --- executions and pairing (revision 0005; see brokersync._store._executions) ----------------------
# Executions are deduplicated per (connection, account, broker execution id); the round trips the
# core derives from them are ordinary rows of ``trades``, and ``round_trips`` says which executions
# and which instrument each came from. Open lots and the last paired execution persist per
# (connection, account, instrument key) so pairing continues across syncs.

executions = Table(
    "executions",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("broker_execution_id", String(255), primary_key=True),
    Column("instrument_key", String(255), nullable=False),  # Instrument.pairing_key
    Column("instrument", Text, nullable=False),  # the Instrument as JSON
    Column("side", String(4), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("price", Money, nullable=False),
    Column("executed_at", UTCDateTime, nullable=False),
    Column("fees", Money, nullable=False),
    Column("fee_currency", String(12)),
    Column("kind", String(16), nullable=False),
    Column("order_id", String(255)),
    Column("open_close", String(16)),
    Column("raw", Text, nullable=False),
    Column("fingerprint", String(32), nullable=False),  # of the normalized fields: a change is a correction
    Column("first_seen_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index(
        "ix_executions_instrument_order",
        "connection_id",
        "account_id",
        "instrument_key",
        "executed_at",
        "broker_execution_id",
    ),
)

# Tombstones of busted executions (which may arrive before the execution they cancel).
execution_cancellations = Table(
    "execution_cancellations",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("broker_execution_id", String(255), primary_key=True),
    Column("cancelled_at", UTCDateTime, nullable=False),
    Column("reason", Text),
    Column("raw", Text, nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
)

open_lots = Table(
    "open_lots",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("instrument_key", String(255), primary_key=True),
    Column("broker_execution_id", String(255), primary_key=True),  # the opening execution
    Column("position", Integer, nullable=False),  # order of the lot in its queue (oldest first)
    Column("direction", String(8), nullable=False),
    Column("quantity", Money, nullable=False),
    Column("price", Money, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("fees", Money, nullable=False),  # the opening fee not yet assigned to a round trip
    Column("fee_quantum", Integer, nullable=False),
    Column("fee_currency", String(12)),  # of ``fees``: the opening execution's (revision 0009; NULL: the instrument's)
)

pairing_state = Table(
    "pairing_state",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("instrument_key", String(255), primary_key=True),
    Column("instrument", Text, nullable=False),  # the latest execution's Instrument as JSON
    Column("last_executed_at", UTCDateTime, nullable=False),  # the last paired execution's order key
    Column("last_execution_id", String(255), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

round_trips = Table(
    "round_trips",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("broker_trade_id", String(255), primary_key=True),
    Column("instrument_key", String(255), nullable=False),
    Column("opening_execution_id", String(255), nullable=False),
    Column("closing_execution_id", String(255), nullable=False),
    Column("closed_at", UTCDateTime, nullable=False),  # the closing execution's time (revision 0008)
    # a re-pair from a point reads the round trips closed at or after it (revision 0008)
    Index(
        "ix_round_trips_closing", "connection_id", "account_id", "instrument_key", "closed_at", "closing_execution_id"
    ),
)

# Open positions as a broker that pairs by itself reports them (a snapshot per account).
position_snapshots = Table(
    "position_snapshots",
    metadata,
    Column("connection_id", String(36), ForeignKey("connections.id", ondelete="CASCADE"), primary_key=True),
    Column("account_id", String(255), primary_key=True),
    Column("instrument_key", String(255), primary_key=True),
    Column("instrument", Text, nullable=False),
    Column("quantity", Money, nullable=False),
    Column("average_price", Money, nullable=False),
    Column("opened_at", UTCDateTime),
    Column("raw", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
