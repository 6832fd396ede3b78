"""Crypto exchanges for brokersync through ccxt: one broker per exchange.

Listing the brokers reads a static table generated from ccxt (``_table.py``) and never imports
ccxt; ccxt is imported when a broker first authenticates or syncs.
"""

from __future__ import annotations

from brokersync_ccxt._metadata import exchange_ids, metadata_for
from brokersync_ccxt.plugin import CcxtExchangeBroker

__all__ = ["CcxtExchangeBroker", "exchange_ids", "metadata_for"]
