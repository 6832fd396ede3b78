"""brokersync-oanda: the OANDA v20 REST API as a brokersync broker plugin (entry point ``oanda``).

* :mod:`brokersync_oanda.plugin`: metadata and hooks;
* :mod:`brokersync_oanda.client`: the endpoints and their paging, through the core's client;
* :mod:`brokersync_oanda.parse`: v20 JSON to brokersync records (pure functions).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
