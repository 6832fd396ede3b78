"""The ``metatrader`` broker: a file-only plugin for MT4/MT5 statements (any MetaTrader broker)."""

from __future__ import annotations

from brokersync import AuthType, BrokerMetadata, Capabilities, CursorKind, Reports, hookimpl
from brokersync.files import FileFormat

__all__ = ["broker_metadata", "file_formats"]

METADATA = BrokerMetadata(
    key="metatrader",
    name="MetaTrader 4/5",
    description="MetaTrader 4 and 5 account statements (HTML), from any MetaTrader broker.",
    auth_type=AuthType.FILE,
    credential_fields=(),
    environments={},
    capabilities=Capabilities(historical=True, cursor=CursorKind.NONE, reports=Reports.ROUND_TRIPS),
    docs_url="https://www.metatrader5.com/en/terminal/help/trading/history",
)


@hookimpl
def broker_metadata() -> BrokerMetadata:
    """Describe the broker (no I/O)."""
    return METADATA


@hookimpl
def file_formats() -> list[FileFormat]:
    """Return the MetaTrader statement format."""
    from brokersync_metatrader.files import STATEMENT_HTML

    return [STATEMENT_HTML]
