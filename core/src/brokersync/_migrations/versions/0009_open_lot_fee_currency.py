"""Open lots know the currency of their unassigned fee: ``open_lots.fee_currency``.

A round trip's ``fees`` holds only the fee shares in its own currency; shares in another currency
(a spot buy paying in the coin bought, fees paid in BNB) are kept apart in its ``raw``, per
currency (ADR 0010, amendment "fees in other currencies"). A lot carried to a later sync must
therefore keep the opening execution's fee currency with its unassigned fee.

Existing rows are filled from their opening execution (``executions.fee_currency``; NULL there and
here means the instrument's currency). A downgrade drops the column.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("open_lots", sa.Column("fee_currency", sa.String(12)))
    op.execute(
        "UPDATE open_lots SET fee_currency = (SELECT e.fee_currency FROM executions AS e "
        "WHERE e.connection_id = open_lots.connection_id AND e.account_id = open_lots.account_id "
        "AND e.broker_execution_id = open_lots.broker_execution_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("open_lots") as batch:
        batch.drop_column("fee_currency")
