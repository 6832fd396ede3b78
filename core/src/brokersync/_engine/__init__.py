"""The sync engine, one module per step of a sync, top down (see ``docs/architecture.md``):

``_api`` (BrokerSync) -> ``_start`` (lease, audit row) -> ``_run`` -> ``_secrets`` -> ``_brokers`` ->
``_tokens`` -> ``_job`` (accounts, pages into the store) -> ``_finish`` (audit row, status, lease).
``_parts`` holds the collaborators every step receives, ``_context`` one run's frozen context,
``_fanout`` many runs at once, ``_reads`` the listings (and positions), ``_execution_batches`` what
``_job`` hands the store beside a page's trades (executions to pair, or a broker's position snapshot).
"""

from __future__ import annotations

from brokersync._engine._api import BrokerSync

__all__ = ["BrokerSync"]
