"""Interactive Brokers for brokersync: Flex Web Service statements, read into executions the core pairs.

Modules: :mod:`~brokersync_ibkr.plugin` (metadata and hooks), :mod:`~brokersync_ibkr.client` (the
two-step Flex flow), :mod:`~brokersync_ibkr.parse` (the Flex XML parser, also for saved files),
:mod:`~brokersync_ibkr.files` (the Activity Statement CSV). IB's own FIFO P&L travels on each
execution (``Execution.broker_realized_pnl``) for the core to check. The parser's names load on
first use, so discovering the plugin stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from brokersync_ibkr._version import __version__

if TYPE_CHECKING:
    from brokersync_ibkr.parse import FlexFormatError, ParsedStatement, iter_statement, parse_statement

__all__ = ["FlexFormatError", "ParsedStatement", "__version__", "iter_statement", "parse_statement"]


def __getattr__(name: str) -> Any:
    if name in ("FlexFormatError", "ParsedStatement", "iter_statement", "parse_statement"):
        from brokersync_ibkr import parse

        return getattr(parse, name)
    raise AttributeError(f"module 'brokersync_ibkr' has no attribute {name!r}")
