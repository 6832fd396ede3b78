"""brokersync's own generic CSV format passes the file-format conformance suite, in each locale variant.

The samples are the ones the generic CSV's own tests write (tests/files/test_file_source.py).
"""

from __future__ import annotations

from brokersync._generic_csv import GENERIC_CSV
from brokersync.testing import FileFormatConformance, FileSample

from tests.files.test_file_source import ROWS, _csv

NINJATRADER_GRID = (
    "Instrument,Action,Quantity,Price,Time,ID,E/X,Position,Order ID,Name,Commission,Rate,Account,Connection\r\n"
    "ES 12-24,Buy,2,5850.25,11/5/2024 8:30:12 AM,e1,Entry,,o-e1,Entry,$4.08,1,Sim101,Rithmic\r\n"
)


class TestGenericCsvConformance(FileFormatConformance):
    file_format = GENERIC_CSV

    def samples(self) -> list[FileSample]:
        common = {"timezone": "America/New_York", "account_id": "U1", "executions": len(ROWS)}
        return [
            FileSample(data=_csv().encode("utf-8"), name="fills.csv", **common),
            FileSample(data=_csv(delimiter=";", decimal_comma=True).encode("utf-8-sig"), name="eu.csv", **common),
            FileSample(data=_csv().encode("utf-16"), name="utf16.csv", **common),
        ]

    def foreign_samples(self) -> list[bytes]:
        return [NINJATRADER_GRID.encode("utf-8")]
