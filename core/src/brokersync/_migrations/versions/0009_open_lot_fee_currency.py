"""Fees never mix currencies: ``open_lots.fee_currency``, and stored round trips' fees rewritten.

A round trip's ``fees`` now holds only the fee shares in its own currency; shares in another
currency (a spot buy paying in the coin bought, fees paid in BNB) stay apart in its ``raw``
(``other_fees`` per currency, ``opening_fee_currency`` / ``closing_fee_currency``; ADR 0010,
amendment "fees in other currencies"). So:

- ``open_lots.fee_currency``: a lot carried to a later sync keeps the opening execution's fee
  currency with its unassigned fee. Existing rows are filled from their opening execution
  (``executions.fee_currency``; NULL there and here means the instrument's currency).
- Stored round trips whose opening or closing execution paid its fee in another currency than the
  round trip's had both shares added into ``fees`` (and ``raw["fee_currency"]``): they are rewritten
  under the new rule from the shares their ``raw`` recorded (``opening_fee``, ``closing_fee``, each in
  its execution's currency), with their fingerprint and ``updated_at``; nothing else moves. Without
  this, they would keep mixed fees until their instrument is re-paired.

A downgrade drops the column; round trips keep the new form (the code before this revision reads
only ``raw["opening_fee"]`` of them, which is unchanged).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from alembic import op

from brokersync._pairing import foreign_fees
from brokersync._store._fingerprints import fingerprint_fields
from brokersync._store._types import Money, UTCDateTime, utc_text

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

_BATCH = 2000

_trades = sa.table(
    "trades",
    sa.column("id", sa.Integer()),
    sa.column("connection_id", sa.String()),
    sa.column("account_id", sa.String()),
    sa.column("broker_trade_id", sa.String()),
    sa.column("symbol", sa.String()),
    sa.column("direction", sa.String()),
    sa.column("opened_at", UTCDateTime()),
    sa.column("closed_at", UTCDateTime()),
    sa.column("entry_price", Money()),
    sa.column("exit_price", Money()),
    sa.column("quantity", Money()),
    sa.column("realized_pnl", Money()),
    sa.column("fees", Money()),
    sa.column("currency", sa.String()),
    sa.column("raw", sa.Text()),
    sa.column("fingerprint", sa.String()),
    sa.column("updated_at", UTCDateTime()),
)
_round_trips = sa.table(
    "round_trips",
    sa.column("connection_id", sa.String()),
    sa.column("account_id", sa.String()),
    sa.column("broker_trade_id", sa.String()),
    sa.column("opening_execution_id", sa.String()),
    sa.column("closing_execution_id", sa.String()),
)
_executions = sa.table(
    "executions",
    sa.column("connection_id", sa.String()),
    sa.column("account_id", sa.String()),
    sa.column("broker_execution_id", sa.String()),
    sa.column("fee_currency", sa.String()),
)


def _mixed_round_trips(last_id: Any) -> sa.Select[Any]:
    """Round trips (with their trade row) whose opening or closing fee is in another currency."""
    t, rt = _trades.c, _round_trips.c
    opening, closing = _executions.alias("opening"), _executions.alias("closing")

    def execution_of(execution: Any, execution_id: Any) -> Any:
        e = execution.c
        return sa.and_(
            e.connection_id == rt.connection_id,
            e.account_id == rt.account_id,
            e.broker_execution_id == execution_id,
        )

    def foreign(execution: Any) -> Any:
        return sa.and_(execution.c.fee_currency.is_not(None), execution.c.fee_currency != t.currency)

    query = (
        sa.select(
            _trades, opening.c.fee_currency.label("opening_currency"), closing.c.fee_currency.label("closing_currency")
        )
        .select_from(
            _round_trips.join(
                _trades,
                sa.and_(
                    t.connection_id == rt.connection_id,
                    t.account_id == rt.account_id,
                    t.broker_trade_id == rt.broker_trade_id,
                ),
            )
            .join(opening, execution_of(opening, rt.opening_execution_id))
            .join(closing, execution_of(closing, rt.closing_execution_id))
        )
        .where(sa.or_(foreign(opening), foreign(closing)))
        .order_by(t.id)
        .limit(_BATCH)
    )
    return query if last_id is None else query.where(t.id > last_id)


def _rewrite_round_trips() -> None:
    bind = op.get_bind()
    now = dt.datetime.now(dt.UTC)
    update = (
        sa.update(_trades)
        .where(_trades.c.id == sa.bindparam("row_id"))
        .values(
            fees=sa.bindparam("new_fees", type_=Money()),
            raw=sa.bindparam("new_raw"),
            fingerprint=sa.bindparam("new_fp"),
            updated_at=sa.bindparam("now", type_=UTCDateTime()),
        )
    )
    last_id: Any = None
    while True:
        rows = bind.execute(_mixed_round_trips(last_id)).all()
        if not rows:
            return
        changed = []
        for row in rows:
            raw = json.loads(row.raw)
            if not isinstance(raw, dict) or "opening_fee" not in raw or "closing_fee" not in raw:
                continue  # not a paired round trip's record: leave it alone
            raw.pop("fee_currency", None)
            for key in ("other_fees", "opening_fee_currency", "closing_fee_currency"):
                raw.pop(key, None)
            fees = foreign_fees(
                raw,
                row.currency,
                Decimal(raw["opening_fee"]),
                row.opening_currency,
                Decimal(raw["closing_fee"]),
                row.closing_currency,
            )
            fp = fingerprint_fields(
                row.symbol,
                row.direction,
                utc_text(row.opened_at),
                "" if row.closed_at is None else utc_text(row.closed_at),
                str(row.entry_price),
                None if row.exit_price is None else str(row.exit_price),
                str(row.quantity),
                None if row.realized_pnl is None else str(row.realized_pnl),
                str(fees),
                row.currency,
            )
            changed.append(
                {
                    "row_id": row.id,
                    "new_fees": fees,
                    "new_raw": json.dumps(raw, separators=(",", ":")),
                    "new_fp": fp,
                    "now": now,
                }
            )
        if changed:
            bind.execute(update, changed)
        last_id = rows[-1].id


def upgrade() -> None:
    op.add_column("open_lots", sa.Column("fee_currency", sa.String(12)))
    op.execute(
        "UPDATE open_lots SET fee_currency = (SELECT e.fee_currency FROM executions AS e "
        "WHERE e.connection_id = open_lots.connection_id AND e.account_id = open_lots.account_id "
        "AND e.broker_execution_id = open_lots.broker_execution_id)"
    )
    _rewrite_round_trips()


def downgrade() -> None:
    with op.batch_alter_table("open_lots") as batch:
        batch.drop_column("fee_currency")
