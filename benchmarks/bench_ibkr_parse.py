"""The IBKR Flex parser on large statements, against bare ``xml.etree.ElementTree.iterparse``.

    python benchmarks/bench_ibkr_parse.py                      # 20,000 and 200,000 executions
    python benchmarks/bench_ibkr_parse.py --sizes 20000 200000 --repeat 3

Writes a Flex Activity statement of N ``Trade`` rows (IB's usual ~55 attributes each, two
accounts, stocks / futures / options / forex, mixed date layouts, ``--`` placeholders) to a temp
file, then in a fresh subprocess each (so peak RSS is the run's own):

* ``bare``: ``ElementTree.iterparse`` over the file, counting ``Trade`` rows and clearing each
  (the least any streaming reader of this file must do);
* ``ibkr``: ``brokersync_ibkr.parse.iter_statement`` over the same file: defusedxml, every row
  converted into a validated ``brokersync.Execution`` (Decimal money, UTC times, instruments).

Runs alternate (bare, ibkr, bare, ibkr, ...) and the best of each is kept, by CPU time (the
machine is shared: wall time swings with other people's load; both are printed). Prints a
markdown table for benchmarks/RESULTS.md: executions/s, the ratio to bare, peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from zoneinfo import ZoneInfo

NY = ZoneInfo("America/New_York")
INSTRUMENTS = [
    ("STK", "265598", "AAPL", "USD", "1", "--", "--", "--"),
    ("STK", "272093", "MSFT", "USD", "1", "--", "--", "--"),
    ("FUT", "495512563", "ESH4", "USD", "50", "20240315", "--", "--"),
    ("FUT", "553444806", "FDAX MAR 24", "EUR", "25", "20240315", "--", "--"),
    ("OPT", "600000001", "AAPL  240119C00190000", "USD", "100", "20240119", "190", "C"),
    ("CASH", "12087792", "EUR.USD", "USD", "1", "--", "--", "--"),
]


def _time(index: int, when: dt.datetime) -> str:
    local = when.astimezone(NY)
    layout = index % 3
    if layout == 0:
        return f'dateTime="{local:%Y%m%d;%H%M%S}" tradeDate="{local:%Y%m%d}"'
    if layout == 1:
        return f'dateTime="{local:%Y-%m-%d, %H:%M:%S}" tradeDate="{local:%Y-%m-%d}"'
    return f'tradeDate="{local:%Y%m%d}" tradeTime="{local:%H%M%S}"'


def write_statement(path: Path, executions: int) -> int:
    start = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n<FlexQueryResponse queryName="bench" type="AF">\n')
        out.write('<FlexStatements count="2">\n')
        per_account = executions // 2
        for number, account in enumerate(("U1111111", "U2222222")):
            out.write(f'<FlexStatement accountId="{account}" fromDate="20240102" toDate="20241231" period="Custom">\n')
            out.write(f'<AccountInformation accountId="{account}" currency="USD" acctAlias="bench" />\n<Trades>\n')
            for i in range(per_account):
                category, conid, symbol, currency, mult, expiry, strike, right = INSTRUMENTS[i % len(INSTRUMENTS)]
                when = start + dt.timedelta(seconds=37 * i + number)
                quantity = (1 + i % 7) * (1 if i % 2 == 0 else -1)
                price = f"{100 + (i % 1000) / 8:.4f}"
                txid = 10_000_000 + number * per_account + i
                out.write(
                    f'<Trade accountId="{account}" acctAlias="" model="" currency="{currency}" fxRateToBase="1" '
                    f'assetCategory="{category}" symbol="{symbol}" description="{symbol} bench" conid="{conid}" '
                    f'securityID="" securityIDType="" cusip="" isin="" listingExchange="SMART" '
                    f'underlyingConid="" underlyingSymbol="--" underlyingSecurityID="" underlyingListingExchange="" '
                    f'issuer="" multiplier="{mult}" strike="{strike}" expiry="{expiry}" putCall="{right}" '
                    f'principalAdjustFactor="" reportDate="20240102" {_time(i, when)} settleDateTarget="20240104" '
                    f'transactionType="ExchTrade" exchange="IEX" quantity="{quantity}" tradePrice="{price}" '
                    f'tradeMoney="0" proceeds="0" taxes="0" ibCommission="-{1 + i % 3}.25" '
                    f'ibCommissionCurrency="{currency}" netCash="0" closePrice="{price}" '
                    f'openCloseIndicator="{"O" if i % 2 == 0 else "C"}" notes="" cost="0" fifoPnlRealized="0" '
                    f'fxPnl="0" mtmPnl="0" origTradePrice="0" origTradeDate="" origTradeID="" origOrderID="0" '
                    f'clearingFirmID="" transactionID="{txid}" buySell="{"BUY" if quantity > 0 else "SELL"}" '
                    f'ibOrderID="{txid + 5}" ibExecID="0000e0d5.{txid:x}.01.01" brokerageOrderID="" '
                    f'orderReference="" volatilityOrderLink="" exchOrderId="--" extExecID="--" '
                    f'orderTime="20240102;093000" openDateTime="--" holdingPeriodDateTime="--" '
                    f'whenRealized="--" whenReopened="--" levelOfDetail="EXECUTION" changeInPrice="0" '
                    f'changeInQuantity="0" orderType="LMT" traderID="" isAPIOrder="N" accruedInt="0" />\n'
                )
            out.write("</Trades>\n<OpenPositions />\n</FlexStatement>\n")
        out.write("</FlexStatements>\n</FlexQueryResponse>\n")
    return per_account * 2


CHILD = r"""
import json, resource, sys, time
import xml.etree.ElementTree as ET
mode, path = sys.argv[1], sys.argv[2]
if mode != "bare":  # imports are not parsing: load them before the clock starts
    from brokersync import Execution
    from brokersync_ibkr.parse import iter_statement
started = time.perf_counter()
cpu = time.process_time()
count = 0
if mode == "bare":
    for _, element in ET.iterparse(path):
        if element.tag == "Trade":
            count += 1
            element.clear()
else:
    with open(path, "rb") as f:
        for item in iter_statement(f):
            if isinstance(item, Execution):
                count += 1
seconds = time.perf_counter() - started
cpu = time.process_time() - cpu
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"count": count, "seconds": seconds, "cpu": cpu, "peak": peak}))
"""


def measure(mode: str, path: Path) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print()
    print(
        "| executions | file MB | bare iterparse exec/s (CPU) | ibkr parser exec/s (CPU) | ratio | "
        "wall exec/s bare / ibkr | bare peak RSS MB | ibkr peak RSS MB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = Path(tmp) / f"flex-{size}.xml"
            count = write_statement(path, size)
            runs: dict[str, list[dict[str, float]]] = {"bare": [], "ibkr": []}
            for _ in range(args.repeat):  # interleaved, so both see the same load on a shared machine
                for mode in runs:
                    runs[mode].append(measure(mode, path))
            bare = min(runs["bare"], key=lambda r: r["cpu"])
            ours = min(runs["ibkr"], key=lambda r: r["cpu"])
            assert bare["count"] == ours["count"] == count, (bare, ours, count)
            print(
                f"| {count:,} | {path.stat().st_size / 1e6:.0f} | {count / bare['cpu']:,.0f} | "
                f"{count / ours['cpu']:,.0f} | {bare['cpu'] / ours['cpu']:.2f}x | "
                f"{count / bare['seconds']:,.0f} / {count / ours['seconds']:,.0f} | "
                f"{bare['peak'] / 1e6:.0f} | {ours['peak'] / 1e6:.0f} |",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
