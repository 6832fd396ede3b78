"""The ``schwab`` broker: a file-only plugin (file import for now: the Schwab API reaches back about 60 days)."""

from __future__ import annotations

from brokersync import AuthType, BrokerMetadata, Capabilities, CursorKind, Reports, hookimpl
from brokersync.files import FileFormat

__all__ = ["broker_metadata", "file_formats"]

METADATA = BrokerMetadata(
    key="schwab",
    name="Charles Schwab",
    description="Charles Schwab transactions CSV and thinkorswim account statements.",
    auth_type=AuthType.FILE,
    credential_fields=(),
    environments={},
    capabilities=Capabilities(historical=True, cursor=CursorKind.NONE, reports=Reports.EXECUTIONS),
    docs_url="https://www.schwab.com/",
)


@hookimpl
def broker_metadata() -> BrokerMetadata:
    """Describe the broker (no I/O)."""
    return METADATA


@hookimpl
def file_formats() -> list[FileFormat]:
    """Return the Schwab and thinkorswim exports this plugin reads."""
    from brokersync_schwab.files import THINKORSWIM_STATEMENT, TRANSACTIONS_CSV

    return [TRANSACTIONS_CSV, THINKORSWIM_STATEMENT]
