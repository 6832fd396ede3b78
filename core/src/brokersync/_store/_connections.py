"""Connections, their accounts and their encrypted secrets (incl. re-encryption under a new key)."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from brokersync._store._base import Database
from brokersync._store._executions import delete_pairing
from brokersync._store._records import ConnectionRow, connection_info
from brokersync._store._schema import accounts, connections, sync_cursors, sync_leases, trade_cancellations, trades
from brokersync._store._sql import run_sql
from brokersync._store._types import parse_utc
from brokersync._store._upsert import dialect_insert
from brokersync.models import Account
from brokersync.results import AccountInfo, ConnectionInfo, ConnectionStatus

__all__ = ["ConnectionStore"]

# copies the table's columns) cost more CPU than running the statement.


@functools.cache
def _accounts_upsert(dialect: str) -> Any:
    stmt = dialect_insert(dialect)(accounts)
    return stmt.on_conflict_do_update(
        index_elements=[accounts.c.connection_id, accounts.c.account_id],
        set_={k: stmt.excluded[k] for k in ("name", "currency", "type", "updated_at")},
    )


_CONNECTION_QUERY = f"SELECT {', '.join(ConnectionRow._fields)} FROM connections WHERE id = ?"  # noqa: S608 - names from code
_ACCOUNTS_QUERY = (
    "SELECT a.account_id, a.name, a.currency, a.type, c.watermark, c.cursor FROM accounts a "
    "LEFT JOIN sync_cursors c ON c.connection_id = a.connection_id AND c.account_id = a.account_id "
    "WHERE a.connection_id = ? ORDER BY a.account_id"
)


async def _accounts_of(conn: AsyncConnection, connection_id: str) -> list[AccountInfo]:
    rows = await run_sql(conn, _ACCOUNTS_QUERY, (connection_id,))
    return [
        AccountInfo(
            connection_id=connection_id,
            account_id=account_id,
            name=name,
            currency=currency,
            type=type_,
            watermark=parse_utc(watermark),
            cursor=cursor,
        )
        for account_id, name, currency, type_, watermark, cursor in rows
    ]


class ConnectionStore(Database):
    """The ``connections``, ``accounts`` and ``sync_cursors`` rows (read side of the cursors)."""

    async def create_connection(
        self, values: Mapping[str, Any], account_list: Sequence[Account], now: dt.datetime
    ) -> None:
        """Insert a connection and its accounts in one transaction."""
        async with self.write() as conn:
            await conn.execute(insert(connections), [dict(values)])
            await self._upsert_accounts(conn, str(values["id"]), account_list, now)

    async def _upsert_accounts(
        self, conn: AsyncConnection, connection_id: str, account_list: Sequence[Account], now: dt.datetime
    ) -> None:
        if not account_list:
            return
        stmt = _accounts_upsert(conn.dialect.name)
        await conn.execute(
            stmt,
            [
                {
                    "connection_id": connection_id,
                    "account_id": a.id,
                    "name": a.name,
                    "currency": a.currency,
                    "type": a.type,
                    "created_at": now,
                    "updated_at": now,
                }
                for a in account_list
            ],
        )

    async def upsert_accounts(self, connection_id: str, account_list: Sequence[Account], now: dt.datetime) -> None:
        """Add new accounts and refresh the names of known ones."""
        async with self.write() as conn:
            await self._upsert_accounts(conn, connection_id, account_list, now)

    async def account_owners(
        self,
        *,
        user_id: str,
        broker: str,
        environment: str,
        account_ids: Sequence[str],
        status: ConnectionStatus | None = None,
        including: str | None = None,
    ) -> dict[str, str]:
        """Per account id, the connection of this user, broker and environment that owns it.

        A broker account's identity is (user, broker, environment, account id). Its owner is the
        connection whose account row is the oldest, among the user's connections in ``status``
        (any status when ``None``) and the connection ``including``. Accounts nobody has are absent.
        """
        if not account_ids:
            return {}
        eligible: Any = connections.c.status == ConnectionStatus(status).value if status is not None else None
        if including is not None and eligible is not None:
            eligible = or_(eligible, connections.c.id == including)
        query = (
            select(accounts.c.account_id, accounts.c.connection_id)
            .join(connections, connections.c.id == accounts.c.connection_id)
            .where(
                connections.c.user_id == user_id,
                connections.c.broker == broker,
                connections.c.environment == environment,
                accounts.c.account_id.in_(list(account_ids)),
                *([eligible] if eligible is not None else []),
            )
            .order_by(accounts.c.created_at, connections.c.created_at, connections.c.id)
        )
        owners: dict[str, str] = {}
        async with self.read() as conn:
            for row in await conn.execute(query):
                owners.setdefault(row.account_id, row.connection_id)
        return owners

    async def count_secrets(self) -> int:
        """How many connections hold an encrypted credential or token."""
        query = select(func.count()).where(
            or_(connections.c.credentials.is_not(None), connections.c.token.is_not(None))
        )
        async with self.read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def connection_row(self, connection_id: str) -> ConnectionRow | None:
        """The connection's identity, status and ciphertexts, for the engine only."""
        async with self.read() as conn:
            rows = await run_sql(conn, _CONNECTION_QUERY, (connection_id,))
        return ConnectionRow(*rows[0]) if rows else None

    async def update_connection(self, connection_id: str, **values: Any) -> None:
        """Set columns of a connection."""
        async with self.write() as conn:
            await conn.execute(update(connections).where(connections.c.id == connection_id).values(**values))

    async def delete_connection(self, connection_id: str) -> None:
        """Delete a connection with its accounts, cursors, trades, executions, tombstones, lease (audit rows stay)."""
        async with self.write() as conn:
            await conn.execute(delete(sync_leases).where(sync_leases.c.connection_id == connection_id))
            await conn.execute(delete(trades).where(trades.c.connection_id == connection_id))
            await delete_pairing(conn, connection_id)
            await conn.execute(delete(trade_cancellations).where(trade_cancellations.c.connection_id == connection_id))
            await conn.execute(delete(sync_cursors).where(sync_cursors.c.connection_id == connection_id))
            await conn.execute(delete(accounts).where(accounts.c.connection_id == connection_id))
            await conn.execute(delete(connections).where(connections.c.id == connection_id))

    async def list_accounts(self, connection_id: str) -> list[AccountInfo]:
        """The connection's accounts with their watermark and cursor."""
        async with self.read() as conn:
            return await _accounts_of(conn, connection_id)

    async def sync_accounts(
        self, connection_id: str, account_list: Sequence[Account], now: dt.datetime
    ) -> list[AccountInfo]:
        """Add new accounts, refresh changed ones, and return all with their sync positions.

        Usually nothing changed since the last sync: then this is one read and no write
        transaction (the positions cannot move meanwhile: the caller holds the sync lease).
        """
        async with self.read() as conn:
            stored = await _accounts_of(conn, connection_id)
        known = {a.account_id: (a.name, a.currency, a.type) for a in stored}
        if all(known.get(a.id) == (a.name, a.currency, a.type) for a in account_list):
            return stored
        async with self.write() as conn:
            await self._upsert_accounts(conn, connection_id, account_list, now)
            return await _accounts_of(conn, connection_id)

    async def list_connections(
        self,
        *,
        user_id: str | None = None,
        status: ConnectionStatus | None = None,
        broker: str | None = None,
        connection_id: str | None = None,
        with_accounts: bool = True,
    ) -> list[ConnectionInfo]:
        """Connections matching every given filter, oldest first."""
        query = select(connections).order_by(connections.c.created_at, connections.c.id)
        if user_id is not None:
            query = query.where(connections.c.user_id == user_id)
        if status is not None:
            query = query.where(connections.c.status == ConnectionStatus(status).value)
        if broker is not None:
            query = query.where(connections.c.broker == broker)
        if connection_id is not None:
            query = query.where(connections.c.id == connection_id)
        async with self.read() as conn:
            rows = (await conn.execute(query)).all()
        result = []
        for row in rows:
            account_rows = await self.list_accounts(row.id) if with_accounts else []
            result.append(connection_info(row, account_rows))
        return result

    # -- secrets rotation ------------------------------------------------------------------------

    async def rotate_secrets(self, transform: Callable[[str, str, str], str | None], *, batch_size: int = 200) -> int:
        """Re-encrypt secrets: ``transform(connection_id, column, ciphertext)`` returns the new
        ciphertext or ``None`` (unchanged). One transaction per batch; returns how many rows changed.
        """
        moved = 0
        after = ""
        while True:
            async with self.write() as conn:
                query = (
                    select(connections.c.id, connections.c.credentials, connections.c.token)
                    .where(connections.c.id > after)
                    .order_by(connections.c.id)
                    .limit(batch_size)
                )
                rows = (await conn.execute(query)).all()
                if not rows:
                    return moved
                for row in rows:
                    values: dict[str, str] = {}
                    for column in ("credentials", "token"):
                        current = getattr(row, column)
                        if current:
                            new = transform(row.id, column, current)
                            if new is not None and new != current:
                                values[column] = new
                    if values:
                        await conn.execute(update(connections).where(connections.c.id == row.id).values(**values))
                        moved += 1
                after = rows[-1].id

    async def count_connections(
        self, *, status: ConnectionStatus, user_id: str | None = None, broker: str | None = None
    ) -> dict[str, int]:
        """Per broker, how many connections are in ``status``."""
        query = select(connections.c.broker, func.count().label("n")).where(
            connections.c.status == ConnectionStatus(status).value
        )
        if user_id is not None:
            query = query.where(connections.c.user_id == user_id)
        if broker is not None:
            query = query.where(connections.c.broker == broker)
        async with self.read() as conn:
            return {row.broker: int(row.n) for row in await conn.execute(query.group_by(connections.c.broker))}
