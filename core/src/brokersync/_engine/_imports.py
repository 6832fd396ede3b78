"""What :class:`~brokersync.BrokerSync` offers for export files: file-only connections and imports.

A base class holding the engine's parts, like :mod:`brokersync._engine._reads`; the step that does
the work is :mod:`brokersync._engine._import`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brokersync._engine._import import FILE_ENVIRONMENT, formats_for, import_file
from brokersync._engine._parts import EngineParts, require_text
from brokersync._store import store_errors
from brokersync.errors import ConfigurationError
from brokersync.files import FileFormat
from brokersync.results import ConnectionStatus, ConnectResult, ImportProgress, ImportResult

__all__ = ["EngineImports"]


class EngineImports:
    """File-only connections and file imports over the engine's parts; extended by :class:`~brokersync.BrokerSync`.

    Args:
        parts: The engine's collaborators.
    """

    def __init__(self, parts: EngineParts) -> None:
        self._files = parts

    def file_formats(self, broker: str) -> list[FileFormat]:
        """The export formats ``brokersync import`` reads for ``broker``: its plugin's, then the generic CSV.

        Raises:
            ConfigurationError: Unknown broker.
        """
        facade = self._files.brokers.facade(broker, None, "formats", None)
        return list(formats_for(facade))

    @store_errors("connecting a broker for file import")
    async def connect_files(self, user_id: str, broker: str) -> ConnectResult:
        """The user's file-only connection to ``broker`` (created on first use; no credentials, no API).

        Files of a broker with no API (NinjaTrader, MetaTrader) or of a broker the user has not
        connected by API are imported into such a connection. To import into an API connection
        instead, pass its id to :meth:`import_file`.

        Raises:
            ConfigurationError: Unknown broker.
        """
        require_text("user_id", user_id)
        await self._files.readiness.ensure()
        self._files.brokers.facade(broker, None, "formats", None)  # unknown broker: ConfigurationError
        existing = await self._files.store.list_connections(user_id=user_id, broker=broker)
        for info in existing:
            if info.environment == FILE_ENVIRONMENT and info.status is not ConnectionStatus.DISABLED:
                return ConnectResult(
                    connection_id=info.id,
                    user_id=user_id,
                    broker=broker,
                    environment=FILE_ENVIRONMENT,
                    status=info.status,
                    accounts=(),
                )
        connection_id = str(uuid.uuid4())
        now = self._files.clock()
        values = {
            "id": connection_id,
            "user_id": user_id,
            "broker": broker,
            "environment": FILE_ENVIRONMENT,
            "status": ConnectionStatus.ACTIVE.value,
            "credentials": None,
            "token": None,
            "token_expires_at": None,
            "created_at": now,
            "updated_at": now,
        }
        await self._files.store.create_connection(values, [], now)
        return ConnectResult(
            connection_id=connection_id,
            user_id=user_id,
            broker=broker,
            environment=FILE_ENVIRONMENT,
            status=ConnectionStatus.ACTIVE,
            accounts=(),
        )

    @store_errors("importing a file")
    async def import_file(
        self,
        path: str | Path,
        *,
        user_id: str,
        connection_id: str | None = None,
        broker: str | None = None,
        account: str | None = None,
        format: str | None = None,
        timezone: str | None = None,
        options: dict[str, Any] | None = None,
        dry_run: bool = False,
        on_progress: Callable[[ImportProgress], Any] | None = None,
    ) -> ImportResult:
        """Import one export file into a connection: deduplicated, paired, audited like a sync.

        Give ``connection_id`` (an API or file-only connection of the user), or ``broker`` to use
        the user's file-only connection to that broker (created on first use).

        Args:
            path: The file.
            user_id: Whose connection.
            connection_id: The connection to import into.
            broker: Instead of ``connection_id``: the broker key of a file-only connection.
            account: The broker account, for files that do not name it.
            format: The format's name (default: detected from the file's first bytes).
            timezone: The IANA zone of the file's times when the file does not say (never assumed).
            options: Format options (e.g. ``{"server_timezone": "Europe/Athens"}``, ``{"map": ...}``).
            dry_run: Read and validate only; store nothing.
            on_progress: Called with an :class:`~brokersync.ImportProgress` as bytes are read.

        Raises:
            ConfigurationError: No such file, an unknown broker or format, a missing time zone, or a
                file that is not in the format (``FileFormatError``, its subclass) — nothing stored.
            ConnectionNotFoundError: No such connection for this user.
        """
        if (connection_id is None) == (broker is None):
            raise ConfigurationError("import into a connection (connection_id) or a broker's file connection (broker)")
        file = Path(path)
        if not file.is_file():
            raise ConfigurationError(f"{file}: no such file")
        if connection_id is None:
            assert broker is not None
            connection_id = (await self.connect_files(user_id, broker)).connection_id
        row = await self._files.own_row(connection_id, user_id)
        environment = None if row.environment == FILE_ENVIRONMENT else row.environment
        facade = self._files.brokers.facade(row.broker, environment, row.id, None)
        return await import_file(
            self._files,
            facade,
            row,
            path=file,
            user_id=user_id,
            account=account,
            format_name=format,
            timezone=timezone,
            options=dict(options or {}),
            dry_run=dry_run,
            on_progress=on_progress,
        )
