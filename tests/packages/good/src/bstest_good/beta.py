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
    def get_trades(self) -> list[Any]:
        return []
