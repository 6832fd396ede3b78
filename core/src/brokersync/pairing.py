"""Pairing executions into round trips, as the core does it (public, pure, no I/O).

Integrators and plugin tests can pair executions exactly as the engine stores them::

    from brokersync.pairing import pair_executions

    result = pair_executions(executions)  # FIFO; method="lifo" for LIFO
    result.round_trips  # brokersync.Trade records, ids "<opening id>><closing id>"
    result.open_lots  # what is still open, oldest first

The rules (order, FIFO/LIFO, reversals, option expiry, fee proration and its rounding, ids) are
documented in :mod:`brokersync._pairing` and ``docs/adr/0010-pairing.md``.
"""

from __future__ import annotations

from brokersync._pairing import (
    Lot,
    PairingMethod,
    PairingResult,
    execution_order,
    pair_executions,
    round_trip_id,
    share_fee,
)

__all__ = ["Lot", "PairingMethod", "PairingResult", "execution_order", "pair_executions", "round_trip_id", "share_fee"]
