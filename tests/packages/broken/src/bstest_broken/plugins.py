"""Each object breaks exactly one rule of the broker contract."""

from __future__ import annotations

from typing import Any

import brokersync
from brokersync import hookimpl


def _meta(key: str, **overrides: Any) -> brokersync.BrokerMetadata:
    values: dict[str, Any] = {
        "key": key,
        "name": key.title(),
        "auth_type": "token",
        "credential_fields": [brokersync.CredentialField(name="token", secret=True)],
        "environments": {"live": "https://example.invalid"},
    }
    values.update(overrides)
    return brokersync.BrokerMetadata(**values)


class _Base:
    key = "base"

    @hookimpl
    def broker_metadata(self) -> brokersync.BrokerMetadata:
        return _meta(self.key)

    @hookimpl
    async def authenticate(self, credentials: Any) -> brokersync.AuthResult:
        return brokersync.AuthResult(access_token=credentials["token"])

    @hookimpl
    async def get_accounts(self) -> list[brokersync.Account]:
        return []


class _Misspelled(_Base):
    key = "misspelled"

    @hookimpl
    async def get_trade(self, account: Any) -> list[Any]:  # the hook is get_trades
        return []


class _Unmarked(_Base):
    key = "unmarked"

    async def get_trades(self, account: Any) -> list[Any]:  # forgot @hookimpl
        return []


class _BadArgs(_Base):
    key = "badargs"

    @hookimpl
    async def get_trades(self, acount: Any) -> list[Any]:  # typo in the argument name
        return []


class _BadMeta(_Base):
    key = "badmeta"

    @hookimpl
    def broker_metadata(self) -> dict[str, Any]:  # type: ignore[override]
        return {"key": "badmeta", "name": "Bad", "auth_type": "carrier-pigeon", "environments": {}}

    @hookimpl
    async def get_trades(self) -> list[Any]:
        return []


class _WrongKey(_Base):
    key = "not_the_entry_point_name"

    @hookimpl
    async def get_trades(self) -> list[Any]:
        return []


class _FutureApi(_Base):
    key = "futureapi"

    @hookimpl
    def broker_metadata(self) -> brokersync.BrokerMetadata:
        return _meta("futureapi", plugin_api=">=2,<3")

    @hookimpl
    async def get_trades(self) -> list[Any]:
        return []


misspelled = _Misspelled()
unmarked = _Unmarked()
badargs = _BadArgs()
badmeta = _BadMeta()
wrongkey = _WrongKey()
futureapi = _FutureApi()
