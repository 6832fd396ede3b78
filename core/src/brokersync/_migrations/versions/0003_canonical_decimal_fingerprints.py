"""Trade fingerprints hash numerically equal decimals alike: recompute the stored ones.

Until this revision a fingerprint hashed each decimal's exact text, so a broker that sent "1.5" and
later "1.50" for the same price had the trade counted as updated. Fingerprints now hash a canonical
text (:func:`brokersync._store._fingerprints.canonical_decimal`). Without this data migration the first
sync after upgrading would report every stored trade with a trailing zero or an exponent as
updated. Fingerprints are recomputed from the stored columns, in batches of rows (memory stays
flat), and only rows whose fingerprint changes are written.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic import op

from brokersync._store._fingerprints import fingerprint_fields
from brokersync._store._types import Money, UTCDateTime, utc_text

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_BATCH = 5000

_trades = sa.table(
    "trades",
    sa.column("id", sa.Integer()),
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
    sa.column("fingerprint", sa.String()),
)


def _exact_fingerprint(*fields: str | None) -> str:
    # The fingerprint before this revision: the decimals' exact text (None spelled "None").
    text = "\x1f".join(str(field) for field in fields)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _recompute(compute: Callable[..., str]) -> None:
    bind = op.get_bind()
    columns = [_trades.c[name] for name in ("id", "symbol", "direction", "opened_at", "closed_at", "entry_price")]
    columns += [
        _trades.c[name] for name in ("exit_price", "quantity", "realized_pnl", "fees", "currency", "fingerprint")
    ]
    update = sa.update(_trades).where(_trades.c.id == sa.bindparam("row_id")).values(fingerprint=sa.bindparam("new_fp"))
    last_id: Any = None
    while True:
        query = sa.select(*columns).order_by(_trades.c.id).limit(_BATCH)
        if last_id is not None:
            query = query.where(_trades.c.id > last_id)
        rows = bind.execute(query).all()
        if not rows:
            return
        changed = []
        for row in rows:
            new = compute(
                row.symbol,
                row.direction,
                utc_text(row.opened_at),
                "" if row.closed_at is None else utc_text(row.closed_at),
                str(row.entry_price),
                None if row.exit_price is None else str(row.exit_price),
                str(row.quantity),
                None if row.realized_pnl is None else str(row.realized_pnl),
                str(row.fees),
                row.currency,
            )
            if new != row.fingerprint:
                changed.append({"row_id": row.id, "new_fp": new})
        if changed:
            bind.execute(update, changed)
        last_id = rows[-1].id


def upgrade() -> None:
    _recompute(fingerprint_fields)


def downgrade() -> None:
    _recompute(_exact_fingerprint)
