"""The frozen context of one sync run: who, what, since when, and its counters."""

from __future__ import annotations

import datetime as dt

import attrs

from brokersync._metrics import RequestMetrics
from brokersync._store import ConnectionRow
from brokersync.results import ProgressCallback, SyncTrigger

__all__ = ["Lease", "RunContext"]


@attrs.define
class Lease:
    """Whether the run's final transaction gave the connection's lease back."""

    released: bool = False


@attrs.frozen(kw_only=True)
class RunContext:
    """One run of one connection, from lease taken to lease released.

    Attributes:
        row: The connection (identity, status, ciphertexts).
        run_id: The audit row's id.
        started_at: Wall-clock start (audit row, watermark).
        perf_start: ``time.perf_counter()`` at the start (the run's duration).
        metrics: The run's request counters (the HTTP client updates them).
        lease: Set released by the final transaction.
    """

    row: ConnectionRow
    run_id: str
    trigger: SyncTrigger
    since: dt.datetime | None
    started_at: dt.datetime
    perf_start: float
    on_progress: ProgressCallback | None
    metrics: RequestMetrics = attrs.field(factory=RequestMetrics)
    lease: Lease = attrs.field(factory=Lease)

    @property
    def connection_id(self) -> str:
        """The connection synced."""
        return self.row.id
