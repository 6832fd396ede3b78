"""A queue worker in its own process, syncing against the fake broker (for the multi-process tests).

    python queue_worker.py DB_URL KEYS QUEUE_URL QUEUE_NAME burst|serve GRACE [HOLD_FILE]

``burst`` drains the queue and exits; ``serve`` runs until SIGTERM. The fake broker is rebuilt from
the same seed and accounts as the tests' (conftest.ACCOUNTS). Prints ``ready`` once the worker runs,
``started <account>`` when the broker sees a trades request, and ``stats <complete> <failed>
<retried> <aborted>`` when the worker stops. With HOLD_FILE, the broker answers trade requests only
once that file exists, so a test can catch this worker mid-job.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

HERE = Path(__file__).parent
for path in (HERE, HERE.parent / "engine", HERE.parent):
    sys.path.insert(0, str(path))

import fakebroker  # noqa: E402
from brokersync import BrokerSync, SyncQueue  # noqa: E402
from queue_support import ACCOUNTS, PAGE_SIZE  # noqa: E402


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(argv: list[str]) -> int:
    db_url, keys, queue_url, queue_name, mode, grace, *rest = argv
    api = fakebroker.FakeBrokerApi(accounts=dict(ACCOUNTS), page_size=PAGE_SIZE)
    if rest:
        api.hold_file = Path(rest[0])
    api.on_trades = lambda: say(f"started {api.trade_queries[-1]['account']}")
    fakebroker.register()
    async with (
        BrokerSync(db_url, encryption_keys=keys, transports={fakebroker.KEY: api.transport()}) as engine,
        SyncQueue(queue_url, name=queue_name, retries=2, retry_delay=0) as queue,
    ):
        say("ready")
        stats = await queue.run_worker(engine, concurrency=2, grace=float(grace), burst=mode == "burst", poll=0.2)
    say(f"stats {stats.complete} {stats.failed} {stats.retried} {stats.aborted}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
