"""The MetaTrader statement format passes brokersync's file-format conformance suite.

The samples come from this plugin's own tests (``test_statement.py``: the MT5 history report in
UTF-16 and the MT4 statement), loaded under a name of their own. The first sample writes each
table row on one line (as the terminal does), so the suite's derived files change whole rows.
"""

from __future__ import annotations

import importlib.util
import re
import types
from pathlib import Path

from brokersync.testing import FileFormatConformance, FileSample


def _sibling(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"_metatrader_tests_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


statement = _sibling("test_statement")


def _one_row_per_line(html: str) -> str:
    return re.sub(r"\n(?=<td|</tr>)|(?<=<tr>)\n", "", html)


class TestStatementHtml(FileFormatConformance):
    broker_key = "metatrader"
    format_name = "metatrader-html"

    def samples(self) -> list[FileSample]:
        mt5 = statement._mt5()
        return [
            FileSample(data=_one_row_per_line(mt5).encode("utf-16"), name="ReportHistory.html",
                       timezone="Europe/Athens", trades=len(statement.POSITIONS)),
            FileSample(data=mt5.encode("utf-16"), name="ReportHistory-wrapped.html", timezone="Europe/Athens",
                       trades=len(statement.POSITIONS)),
            FileSample(data=statement.MT4.encode("utf-8"), name="Statement.htm", timezone="Europe/London", trades=1),
        ]  # fmt: skip
