"""A module-level broker plugin ("alpha") and, in beta.py, a class-based one ("beta")."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import brokersync
from brokersync import hookimpl


class _Alpha:
    @hookimpl
    def broker_metadata(self) -> brokersync.BrokerMetadata:
        return brokersync.BrokerMetadata(
            key="alpha",
            name="Alpha Securities",
            description="Test broker with a static token.",
            auth_type="token",
            credential_fields=[brokersync.CredentialField(name="token", secret=True)],
            environments={"live": "https://alpha.invalid/api"},
            rate_limits=[brokersync.RateLimit(max_requests=10, window_seconds=1)],
        )

    @hookimpl
    async def authenticate(self, ctx: Any, credentials: Any) -> brokersync.AuthResult:
        return brokersync.AuthResult(access_token=credentials["token"])

    @hookimpl
    async def get_accounts(self, ctx: Any, auth: Any) -> list[brokersync.Account]:
        return [brokersync.Account(id="A-1", currency="USD")]

    @hookimpl
    async def get_trades(self, ctx: Any, account: Any) -> list[brokersync.Trade]:
        return [
            brokersync.Trade(
                broker_trade_id="T-1",
                account_id=account.id,
                symbol="AAPL",
                direction="long",
                opened_at=dt.datetime(2024, 1, 2, 15, 0, tzinfo=dt.UTC),
                closed_at=dt.datetime(2024, 1, 3, 15, 0, tzinfo=dt.UTC),
                entry_price=Decimal("100.10"),
                exit_price=Decimal("101.20"),
                quantity=Decimal(10),
                realized_pnl=Decimal("11.00"),
                fees=Decimal("0.50"),
                currency="USD",
            )
        ]


alpha = _Alpha()
