"""The ``ninjatrader`` broker: a file-only plugin (NinjaTrader desktop has no retail API)."""

from __future__ import annotations

from brokersync import AuthType, BrokerMetadata, Capabilities, CursorKind, Reports, hookimpl
from brokersync.files import FileFormat

__all__ = ["broker_metadata", "file_formats"]

METADATA = BrokerMetadata(
    key="ninjatrader",
    name="NinjaTrader 8",
    description="NinjaTrader 8 desktop exports: Executions grid and Trade Performance CSV.",
    auth_type=AuthType.FILE,
    credential_fields=(),
    environments={},
    capabilities=Capabilities(historical=True, cursor=CursorKind.NONE, reports=Reports.BOTH),
    docs_url="https://ninjatrader.com/support/helpGuides/nt8/",
)


@hookimpl
def broker_metadata() -> BrokerMetadata:
    """Describe the broker (no I/O)."""
    return METADATA


@hookimpl
def file_formats() -> list[FileFormat]:
    """Return the NinjaTrader exports this plugin reads."""
    from brokersync_ninjatrader.files import EXECUTIONS_GRID, TRADE_PERFORMANCE

    return [EXECUTIONS_GRID, TRADE_PERFORMANCE]
