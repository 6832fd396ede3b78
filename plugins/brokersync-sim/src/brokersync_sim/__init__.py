"""brokersync-sim: a simulated broker for brokersync, and the reference broker plugin.

* ``brokersync_sim.plugin``: the plugin (entry point ``sim``): metadata and hooks.
* :class:`SimAPI`: the deterministic fake broker API, served in-process as an httpx transport::

      api = SimAPI(seed=7, accounts=2, trades_per_account=5000, fault_rate=0.02)
      engine = BrokerSync(..., transports={"sim": api.transport()})

* :class:`SimServer`: the same API on a loopback HTTP port (``brokersync-sim serve``).

The fake (and httpx) load on first use, so discovering the plugin stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brokersync_sim.api import FAULT_KINDS, SimAPI, SimStats
    from brokersync_sim.server import SimServer

__all__ = ["FAULT_KINDS", "SimAPI", "SimServer", "SimStats", "__version__"]

__version__ = "0.1.0"

_LAZY = {
    "FAULT_KINDS": "brokersync_sim.api",
    "SimAPI": "brokersync_sim.api",
    "SimStats": "brokersync_sim.api",
    "SimServer": "brokersync_sim.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'brokersync_sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
