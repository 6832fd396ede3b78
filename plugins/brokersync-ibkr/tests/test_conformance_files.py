"""The IBKR exports (a downloaded Flex XML, the Activity Statement CSV) pass the file-format conformance suite.

The samples are the statements this plugin's tests write: ``flexgen``'s Flex XML of the standard
scenario, and ``test_files.py``'s Activity Statement CSV (loaded under a name of its own).
"""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

from brokersync.testing import FileFormatConformance, FileSample
from flexgen import scenario, statement_xml


def _sibling(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"_ibkr_tests_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


files = _sibling("test_files")


def flex_xml() -> bytes:
    fills, accounts = scenario()
    return statement_xml(fills, accounts)


def activity_csv() -> bytes:
    return files.activity_csv(files.plain_fills(), "U1111111", "USD")


class TestFlexXml(FileFormatConformance):
    broker_key = "ibkr"
    format_name = "ibkr-flex-xml"

    def samples(self) -> list[FileSample]:
        return [FileSample(data=flex_xml(), name="flex.xml")]

    def foreign_samples(self) -> list[bytes]:
        return [activity_csv()]


class TestActivityCsv(FileFormatConformance):
    broker_key = "ibkr"
    format_name = "ibkr-activity-csv"
    reads_whole_file = (
        "the statement's Financial Instrument Information section (multipliers, expiries, conids) follows its "
        "Trades section, so the statement is read whole (line by line, within the line cap) before the first page"
    )

    def samples(self) -> list[FileSample]:
        return [FileSample(data=activity_csv(), name="activity.csv", executions=len(files.plain_fills()))]

    def foreign_samples(self) -> list[bytes]:
        return [flex_xml()]
