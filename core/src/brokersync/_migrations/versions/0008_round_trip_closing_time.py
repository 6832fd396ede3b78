"""Round trips know when their closing execution executed: ``round_trips.closed_at``.

A late, corrected or busted execution re-pairs its instrument from the earliest execution it
affects (ADR 0010, amendment). That needs the round trips closed at or after a point of the
instrument's history, found through an index, without reading the ones before it: the column
``closed_at`` (the closing execution's time) and the index ``ix_round_trips_closing``
(connection, account, instrument, closed_at, closing execution id), which replaces
``ix_round_trips_instrument`` (its prefix; no second index to maintain).

Existing rows are filled from their closing execution (stored round trips always agree with the
stored executions after a page). A downgrade drops the column and restores the old index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from brokersync._store._types import UTCDateTime

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("round_trips", sa.Column("closed_at", UTCDateTime()))
    op.execute(
        "UPDATE round_trips SET closed_at = (SELECT e.executed_at FROM executions AS e "
        "WHERE e.connection_id = round_trips.connection_id AND e.account_id = round_trips.account_id "
        "AND e.broker_execution_id = round_trips.closing_execution_id)"
    )
    # a source whose closing execution is gone cannot be placed: it is no round trip of the
    # stored executions any more (never the case after a committed page; kept safe anyway)
    op.execute("DELETE FROM round_trips WHERE closed_at IS NULL")
    op.drop_index("ix_round_trips_instrument", table_name="round_trips")
    with op.batch_alter_table("round_trips") as batch:
        batch.alter_column("closed_at", existing_type=UTCDateTime(), nullable=False)
    op.create_index(
        "ix_round_trips_closing",
        "round_trips",
        ["connection_id", "account_id", "instrument_key", "closed_at", "closing_execution_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_round_trips_closing", table_name="round_trips")
    with op.batch_alter_table("round_trips") as batch:
        batch.drop_column("closed_at")
    op.create_index("ix_round_trips_instrument", "round_trips", ["connection_id", "account_id", "instrument_key"])
