"""Constants shared by the queue tests and their worker subprocesses (no pytest import here)."""

from __future__ import annotations

ACCOUNTS = {"ACC-1": 25, "ACC-2": 10}  # 35 trades per connection
PAGE_SIZE = 10  # several batches per account, so a sync takes a few round trips
TRADES_PER_CONNECTION = sum(ACCOUNTS.values())
