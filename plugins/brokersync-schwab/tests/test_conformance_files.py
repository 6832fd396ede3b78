"""The Schwab and thinkorswim exports pass brokersync's file-format conformance suite.

The samples come from this plugin's own tests (``test_files.py``: the transactions CSV with its
option events, and the thinkorswim account statement), loaded under a name of their own.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

from brokersync.testing import FileFormatConformance, FileSample


def _sibling(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"_schwab_tests_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


files = _sibling("test_files")


class TestTransactionsCsv(FileFormatConformance):
    broker_key = "schwab"
    format_name = "schwab-transactions"
    reads_whole_file = (
        "Schwab lists transactions newest first, and an expiry or assignment closes the position the older "
        "rows (later in the file) open: the rows are read in pieces but reversed before the first page"
    )

    def samples(self) -> list[FileSample]:
        trades = sum(1 for event in files.EVENTS if event[1] != "Qualified Dividend")  # a dividend is no trade
        return [
            FileSample(
                data=files._transactions(),
                name="Individual_XXX123_Transactions.csv",
                account_id="XXX123",
                executions=trades,
            )
        ]

    def foreign_samples(self) -> list[bytes]:
        return [files.STATEMENT.encode()]


class TestThinkorswimStatement(FileFormatConformance):
    broker_key = "schwab"
    format_name = "thinkorswim-statement"

    def samples(self) -> list[FileSample]:
        return [
            FileSample(
                data=files.STATEMENT.encode(),
                name="2024-11-30-AccountStatement.csv",
                timezone="America/New_York",
                account_id="XXX123",
                executions=4,
            )
        ]

    def foreign_samples(self) -> list[bytes]:
        return [files._transactions()]
