"""The entry point targets: ``brokersync_ccxt.brokers:<exchange>`` is the broker for that exchange.

Each attribute is built on first access from the static table (module ``__getattr__``), so
loading one broker neither imports ccxt nor builds the other ninety-odd.
"""

from __future__ import annotations

from brokersync_ccxt._metadata import exchange_ids
from brokersync_ccxt.plugin import CcxtExchangeBroker

__all__: list[str] = []

_built: dict[str, CcxtExchangeBroker] = {}


def __getattr__(name: str) -> CcxtExchangeBroker:
    if name not in exchange_ids():
        raise AttributeError(f"module {__name__!r} has no broker {name!r}")
    broker = _built.get(name)
    if broker is None:
        broker = _built[name] = CcxtExchangeBroker(name)
    return broker


def __dir__() -> list[str]:
    return sorted(exchange_ids())
