"""brokersync-tradovate: the Tradovate broker plugin for brokersync.

* ``brokersync_tradovate.plugin``: the plugin (entry point ``tradovate``): metadata and hooks.
* ``brokersync_tradovate.client``: the REST API through the core's client (auth, batches).
* ``brokersync_tradovate.parse``: wire records to brokersync records (pure functions).
* ``brokersync_tradovate.files``: the Performance, Position History and Orders/Fills CSV exports.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
