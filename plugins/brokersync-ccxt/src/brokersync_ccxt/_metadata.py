"""Broker metadata for each ccxt exchange, built from the static table (no ccxt import)."""

from __future__ import annotations

import functools
import math
from typing import Any

from brokersync import AuthType, BrokerMetadata, Capabilities, CredentialField, CursorKind, RateLimit, Reports

from brokersync_ccxt._table import EXCHANGES

__all__ = ["CREDENTIAL_NAMES", "OPTION_FIELDS", "exchange_ids", "limits_for", "metadata_for", "rate_limit_for"]

#: ccxt credential name -> brokersync credential field name (field names are snake_case).
CREDENTIAL_NAMES = {
    "apiKey": "api_key",
    "secret": "secret",
    "password": "password",
    "uid": "uid",
    "login": "login",
    "twofa": "twofa",
    "privateKey": "private_key",
    "walletAddress": "wallet_address",
    "token": "token",
    "accountId": "account_id",
}
#: The API key too: it is not enough to sign, but it names the account and should not reach logs.
_SECRET = {"apiKey", "secret", "password", "twofa", "privateKey", "token"}
_LABELS = {
    "apiKey": ("API key", "A read-only API key (no trading, no withdrawal permission is needed); ccxt's apiKey."),
    "secret": ("API secret", "The secret of the API key."),
    "password": ("API passphrase", "The passphrase chosen when the key was created; ccxt's password."),
    "uid": ("User id", "The exchange's user or account id that goes with the key."),
    "privateKey": ("Private key", "The private key that signs requests."),
    "walletAddress": ("Wallet address", "The wallet address the key belongs to."),
}
#: Optional, non-secret fields that are options of the connection, not credentials of the exchange:
#: stored with the connection (``brokersync connect ... --set symbols=ETH/BTC``), read by every sync.
OPTION_FIELDS = ("symbols", "market_types")
#: The limiter counts ccxt's endpoint cost units over this window (a burst of at most one window).
WINDOW_SECONDS = 10.0
#: "No limit" in ccxt's features.
UNBOUNDED_DAYS = 100000


def exchange_ids() -> frozenset[str]:
    """Every exchange offered as a broker (those whose ``fetchMyTrades`` ccxt supports)."""
    return frozenset(EXCHANGES)


def limits_for(exchange_id: str) -> dict[str, dict[str, Any]]:
    """ccxt's ``features[type].fetchMyTrades`` per market type (``spot``, ``linear``)."""
    return dict(EXCHANGES[exchange_id]["types"])


def rate_limit_for(exchange_id: str) -> RateLimit:
    """ccxt's ``rateLimit`` (ms per cost unit) as a sliding window of cost units, per API key."""
    per_unit_ms = EXCHANGES[exchange_id]["rate_limit_ms"] or 1000.0
    units = max(1, math.floor(WINDOW_SECONDS * 1000.0 / per_unit_ms))
    # A window must hold the costliest request; ccxt weights run up to a few hundred units.
    return RateLimit(max_requests=units, window_seconds=WINDOW_SECONDS, scope="account", name="default")


def _days(value: Any) -> str:
    if value is None:
        return "not documented"
    if value >= UNBOUNDED_DAYS:
        return "no limit"
    return f"{value} days"


def _describe(exchange_id: str, entry: dict[str, Any]) -> str:
    parts = []
    for kind, limits in sorted(entry["types"].items()):
        parts.append(
            f"{kind}: history {_days(limits['days_back'])}, window {_days(limits['until_days'])}"
            f"{', symbol required' if limits['symbol_required'] else ''}"
        )
    return f"{entry['name']} fills through ccxt ({'; '.join(parts) or 'limits not published'})"


def _option_fields(entry: dict[str, Any]) -> list[CredentialField]:
    """``symbols`` where a market type needs a symbol, ``market_types`` where there is more than one."""
    fields = []
    kinds = entry["types"]
    if any(limits["symbol_required"] for limits in kinds.values()):
        fields.append(
            CredentialField(
                name="symbols",
                label="Extra markets to search (optional)",
                required=False,
                default="",
                description="Markets searched besides those found from balances and transfers, comma separated "
                "ccxt symbols (ETH/BTC,SOL/USDT; perpetuals BTC/USDT:USDT).",
            )
        )
    if len(kinds) > 1:
        fields.append(
            CredentialField(
                name="market_types",
                label="Market types (optional)",
                required=False,
                default="",
                description=f"Which fills to sync, comma separated: {', '.join(sorted(kinds))} (default: "
                f"{', '.join(k for k, lim in sorted(kinds.items()) if k == 'spot' or not lim['symbol_required'])}).",
            )
        )
    return fields


@functools.cache
def metadata_for(exchange_id: str) -> BrokerMetadata:
    """The :class:`brokersync.BrokerMetadata` of one exchange."""
    entry = EXCHANGES[exchange_id]
    fields = [
        CredentialField(
            name=CREDENTIAL_NAMES.get(name, name.lower()),
            label=_LABELS.get(name, (name, ""))[0],
            description=_LABELS.get(name, (name, ""))[1],
            secret=name in _SECRET,
        )
        for name in sorted(entry["credentials"], key=lambda n: list(CREDENTIAL_NAMES).index(n))
    ]
    fields.extend(_option_fields(entry))
    environments = {"live": entry["live_url"]}
    if entry["sandbox_url"]:
        environments["sandbox"] = entry["sandbox_url"]
    depths = [t["days_back"] for t in entry["types"].values() if t["days_back"] and t["days_back"] < UNBOUNDED_DAYS]
    return BrokerMetadata(
        key=exchange_id,
        name=entry["name"],
        description=_describe(exchange_id, entry),
        auth_type=AuthType.API_KEY,
        credential_fields=fields,
        environments=environments,
        default_environment="live",
        capabilities=Capabilities(
            historical=True,
            max_history_days=max(depths) if depths else None,
            cursor=CursorKind.OPAQUE,
            reports=Reports.EXECUTIONS,
        ),
        rate_limits=(rate_limit_for(exchange_id),),
        docs_url=entry["doc_url"],
    )
