"""A class-based plugin: the registry instantiates it."""

from __future__ import annotations

from typing import Any

import brokersync
from brokersync import hookimpl


class BetaBroker:
    @hookimpl
    def broker_metadata(self) -> dict[str, Any]:
        # Metadata may also be given as a mapping; the core validates it strictly.
        return {
            "key": "beta",
            "name": "Beta Futures",
            "auth_type": "password",
            "credential_fields": [{"name": "username"}, {"name": "password", "secret": True}],
            "environments": {"live": "https://live.beta.invalid", "demo": "https://demo.beta.invalid"},
            "default_environment": "demo",
            "capabilities": {"refresh_token": True, "cursor": "opaque"},
        }

    @hookimpl
    def authenticate(self, credentials: Any) -> brokersync.AuthResult:
        return brokersync.AuthResult(access_token="beta-" + credentials["username"])

    @hookimpl
    def refresh_token(self, auth: brokersync.AuthResult) -> brokersync.AuthResult:
        return brokersync.AuthResult(access_token=auth.access_token + "-renewed")

    @hookimpl
    def get_accounts(self) -> list[dict[str, str]]:
        return [{"id": "B-1"}, {"id": "B-2", "currency": "eur"}]

    @hookimpl
    def get_trades(self, account: brokersync.Account) -> list[dict[str, Any]]:
        # Deterministic trades without a network: enough for CLI and engine tests in a subprocess.
        count = 3 if account.id == "B-1" else 2
        records: list[dict[str, Any]] = [
            {
                "broker_trade_id": f"{account.id}-{n}",
                "symbol": "ESZ4",
                "direction": "long" if n % 2 else "short",
                "opened_at": f"2024-11-0{n}T14:30:00Z",
                "closed_at": f"2024-11-0{n}T15:00:00Z",
                "entry_price": "5800.25",
                "exit_price": "5801.50",
                "quantity": "2",
                "realized_pnl": "125.00" if n % 2 else "-125.00",
                "fees": "4.12",
                "currency": "USD",
            }
            for n in range(1, count + 1)
        ]
        if account.id == "B-2":
            records.append({**records[0], "broker_trade_id": "B-2-bad", "entry_price": 1.5})  # a float: refused
        return records
