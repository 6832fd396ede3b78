"""A separate process that syncs one connection against the fake broker (for the reliability tests).

    python sync_worker.py DB_URL KEYS CONNECTION_ID USER_ID TRIGGER ACCOUNTS PAGE_SIZE [HOLD_FILE]

ACCOUNTS is ``ACC-1=300,ACC-2=200``. Prints ``progress <imported>`` after each stored batch,
``started`` when the broker first sees a trades request, and a final ``result ...`` or
``error <ExceptionType>`` line. With HOLD_FILE, the broker answers trade requests only once that
file exists, so a test can keep this sync running while it tries a second one.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import fakebroker
from brokersync import BrokerSync, BrokerSyncError, SyncProgress


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def main(argv: list[str]) -> int:
    db_url, keys, connection_id, user_id, trigger, accounts, page_size, *rest = argv
    api = fakebroker.FakeBrokerApi(
        accounts={name: int(count) for name, count in (part.split("=") for part in accounts.split(","))},
        page_size=int(page_size),
    )
    if rest:
        api.hold_file = Path(rest[0])
    started = False

    def on_trades() -> None:
        nonlocal started
        if not started:
            started = True
            say("started")

    api.on_trades = on_trades
    fakebroker.register()

    def on_progress(progress: SyncProgress) -> None:
        say(f"progress {progress.imported + progress.updated + progress.skipped}")

    async with BrokerSync(db_url, encryption_keys=keys, transports={fakebroker.KEY: api.transport()}) as engine:
        try:
            result = await engine.sync_broker_trades(connection_id, user_id, trigger=trigger, on_progress=on_progress)
        except BrokerSyncError as exc:
            say(f"error {type(exc).__name__} {exc}")
            return 1
    say(f"result {result.status.value} {result.imported} {result.skipped} {result.updated}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
