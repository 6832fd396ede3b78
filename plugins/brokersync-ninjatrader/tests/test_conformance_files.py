"""The NinjaTrader exports pass brokersync's file-format conformance suite.

The samples come from this plugin's own tests (``test_files.py``: the Executions grid in its US
and European variants, and the Trade Performance rows), loaded under a name of their own.
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

from brokersync.testing import FileFormatConformance, FileSample


def _sibling(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"_ninjatrader_tests_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


files = _sibling("test_files")

PERFORMANCE_ROWS = [
    "1,ES 12-24,Sim101,,Long,3,5850.666,5855.75,11/5/2024 8:30:12 AM,11/5/2024 9:02:44 AM,Entry,Exit,$750.38,$750.38,$12.24,$0,$0,$0,3",  # noqa: E501
    "2,NQ 12-24,Apex-2,,Short,1,20500,20480.25,11/5/2024 9:10:00 AM,11/5/2024 9:20:00 AM,Entry,Exit,$390.92,$1141.30,$4.08,$0,$0,$0,1",  # noqa: E501
    "3,NQ 12-24,Apex-2,,Short,1,20500,20480.25,11/5/2024 9:10:00 AM,11/5/2024 9:20:00 AM,Entry,Exit,$390.92,$1532.22,$4.08,$0,$0,$0,1",  # noqa: E501
]


def performance_csv() -> bytes:
    return ("\r\n".join([files.PERFORMANCE_HEADER, *PERFORMANCE_ROWS]) + "\r\n").encode("utf-8-sig")


class TestExecutionsGrid(FileFormatConformance):
    broker_key = "ninjatrader"
    format_name = "ninjatrader-executions"

    def samples(self) -> list[FileSample]:
        return [
            FileSample(data=files._grid(), name="executions.csv", timezone="America/Chicago", executions=4),
            FileSample(data=files._grid(european=True), name="eu.csv", timezone="America/Chicago", executions=4),
        ]

    def foreign_samples(self) -> list[bytes]:
        return [performance_csv()]


class TestTradePerformance(FileFormatConformance):
    broker_key = "ninjatrader"
    format_name = "ninjatrader-trades"

    def samples(self) -> list[FileSample]:
        return [FileSample(data=performance_csv(), name="trades.csv", timezone="America/Chicago", trades=3)]

    def foreign_samples(self) -> list[bytes]:
        return [files._grid(), files._grid(european=True)]
