"""Accounts' currency as wide as trades' (12 characters), and sync_runs.warnings.

``Account.currency`` accepts what ``Trade.currency`` accepts (ISO codes and crypto tickers such as
``USDT``); revision 0005 widened ``trades.currency`` but left ``accounts.currency`` at 3, which
PostgreSQL enforces. ``sync_runs.warnings`` keeps the run's data-quality warnings (JSON, redacted):
what a plugin or the core noticed without failing a record. Existing rows keep NULL (no warnings).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("currency", type_=sa.String(12), existing_type=sa.String(3), existing_nullable=True)
    op.add_column("sync_runs", sa.Column("warnings", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("sync_runs") as batch:
        batch.drop_column("warnings")
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column("currency", type_=sa.String(3), existing_type=sa.String(12), existing_nullable=True)
