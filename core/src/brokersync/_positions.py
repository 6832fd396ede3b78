"""Open positions and the pairing method of :class:`~brokersync.BrokerSync` (a mixin).

Positions come from the open lots of paired executions, or (for brokers that pair by themselves)
from the snapshot the broker reported last. The pairing method is per connection: FIFO by default,
LIFO on request; changing it re-pairs the connection's executions at once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from brokersync._pairing import PairingMethod
from brokersync._store import store_errors

if TYPE_CHECKING:
    from brokersync._store import ConnectionRow, Store
    from brokersync._store._executions import StoredPosition

__all__ = ["PositionQueries"]


class PositionQueries:
    """``positions`` and ``set_pairing_method``; mixed into :class:`~brokersync.BrokerSync`."""

    _store: Store
    _clock: Callable[[], dt.datetime]

    async def _ensure_ready(self) -> None:
        raise NotImplementedError

    async def _own_row(self, connection_id: str, user_id: str) -> ConnectionRow:
        raise NotImplementedError

    async def _connection_ids(self, user_id: str | None, connection_id: str | None) -> list[str] | None:
        raise NotImplementedError

    @store_errors("reading open positions")
    async def positions(
        self, *, user_id: str | None = None, connection_id: str | None = None, account: str | None = None
    ) -> list[StoredPosition]:
        """Open positions per account and instrument (all users' when ``user_id`` is ``None``: operator use).

        For a broker whose executions the core pairs, these are the open lots (signed quantity,
        quantity-weighted average entry price, when the oldest lot opened); for a broker that pairs
        by itself and reports positions, its last snapshot (``source == "broker snapshot"``).
        """
        await self._ensure_ready()
        ids = await self._connection_ids(user_id, connection_id)
        return await self._store.positions(connection_ids=ids, account_id=account)

    @store_errors("changing the pairing method")
    async def set_pairing_method(self, connection_id: str, user_id: str, method: PairingMethod | str) -> int:
        """Pair this connection's executions FIFO (the default) or LIFO from now on.

        The connection's executions are re-paired at once with the new method, in one transaction:
        round trips that change are updated, those that no longer exist get tombstones.

        Returns:
            How many round trips were imported, updated or cancelled by the re-pair.

        Raises:
            ValueError: ``method`` is not ``"fifo"`` or ``"lifo"``.
            ConnectionNotFoundError: No such connection for this user.
        """
        chosen = PairingMethod(method)
        await self._ensure_ready()
        await self._own_row(connection_id, user_id)
        return await self._store.set_pairing_method(connection_id, chosen.value, now=self._clock())
