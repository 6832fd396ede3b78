"""The sync engine: connect brokers, sync their trades, keep the audit trail.

``BrokerSync`` is the object integrators (and the CLI) use. It holds the configuration (database,
vault, registry, transports, clock) and implements the seed's operations: ``connect_broker``,
``reconnect_broker``, ``sync_broker_trades``, ``run_scheduled_sync`` and ``disconnect_broker``,
plus listings, status, key rotation and schema upgrades.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from brokersync._config import EngineSettings, data_dir, default_database_url
from brokersync._log import get_logger
from brokersync._queries import EngineQueries
from brokersync._results import ConnectResult, SyncResult
from brokersync._run import SyncRunner
from brokersync._store import (
    ConnectionRow,
    ConnectionStatus,
    Store,
    SyncTrigger,
    store_errors,
    wrap_store_errors,
)
from brokersync._store._database import safe_url
from brokersync._sync import ProgressCallback, auth_from_json, auth_to_json
from brokersync.errors import (
    ConfigurationError,
    ConnectionNotFoundError,
    NeedsReauthError,
)
from brokersync.models import AuthResult

if TYPE_CHECKING:
    import httpx

    from brokersync._broker import Broker
    from brokersync._metrics import RequestMetrics
    from brokersync._registry import BrokerRegistry
    from brokersync._resilience import Resilience
    from brokersync._vault import Vault

__all__ = ["BrokerSync"]

Clock = Callable[[], dt.datetime]
Sleep = Callable[[float], Awaitable[None]]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _require_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


class BrokerSync(EngineQueries):
    """The sync engine. Use as ``async with BrokerSync() as engine: ...`` (or call :meth:`aclose`).

    Args:
        database_url: SQLAlchemy URL; default ``BROKERSYNC_DATABASE_URL`` or a SQLite file in the
            data directory. ``postgresql://`` / ``sqlite://`` get their async driver.
        encryption_keys: ``key_id:base64`` entries (first active), as a comma-separated string or a
            sequence; default ``BROKERSYNC_ENCRYPTION_KEYS`` or the data directory's key file.
        vault: A ready :class:`~brokersync.Vault` (instead of ``encryption_keys``).
        registry: Where brokers come from; default the process-wide registry.
        redis_url: Redis for the rate limiter shared by every process (default: per-process memory).
        resilience: A ready :class:`~brokersync.Resilience` (instead of ``redis_url``): rate limits,
            circuit breakers and retry policies for every broker request.
        transports: Per broker key, an httpx transport (tests: ``httpx.MockTransport``).
        base_urls: Per broker key, a base URL overriding the metadata's environment URL.
        clock: Returns the current tz-aware UTC time (tests inject one).
        sleep: Awaitable sleep handed to plugins and the retry layer (tests inject one).
        settings: Engine tuning; the keyword arguments below override its fields.
        lookback: See :class:`EngineSettings`.
        lease_ttl: See :class:`EngineSettings`.
        concurrency: See :class:`EngineSettings`.
        auto_upgrade: Migrate the schema on first use. Default: on for SQLite, off for PostgreSQL
            (there, run :meth:`upgrade_database` / ``brokersync db upgrade`` as a deploy step).
    """

    def __init__(
        self,
        database_url: str | None = None,
        *,
        encryption_keys: str | Sequence[str] | None = None,
        vault: Vault | None = None,
        registry: BrokerRegistry | None = None,
        redis_url: str | None = None,
        resilience: Resilience | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
        base_urls: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        sleep: Sleep | None = None,
        settings: EngineSettings | None = None,
        lookback: dt.timedelta | None = None,
        lease_ttl: dt.timedelta | None = None,
        concurrency: int | None = None,
        auto_upgrade: bool | None = None,
    ) -> None:
        import attrs

        self.database_url = database_url or default_database_url()
        self._store = Store(self.database_url)
        overrides: dict[str, Any] = {
            k: v
            for k, v in {"lookback": lookback, "lease_ttl": lease_ttl, "concurrency": concurrency}.items()
            if v is not None
        }
        self.settings = attrs.evolve(settings or EngineSettings(), **overrides)
        self._keys = encryption_keys
        self._vault = vault
        self._registry = registry
        self.redis_url = redis_url
        self._transports = dict(transports or {})
        self._base_urls = dict(base_urls or {})
        self._clock: Clock = clock or _utcnow
        self._sleep = sleep
        self._auto_upgrade = self._store.dialect == "sqlite" if auto_upgrade is None else auto_upgrade
        self._ready = False
        self._ready_lock = asyncio.Lock()
        self._token_locks: dict[str, asyncio.Lock] = {}
        self._resilience: Resilience | None = resilience
        self._owns_resilience = resilience is None
        self.holder = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._log = get_logger(component="engine")
        self._runner = SyncRunner(self)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> BrokerSync:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close database connections (and the limiter's Redis connections, if the engine made them)."""
        await self._store.aclose()
        if self._resilience is not None and self._owns_resilience:
            await self._resilience.aclose()

    @property
    def store(self) -> Store:
        """The underlying store (advanced use: benchmarks, custom queries)."""
        return self._store

    @property
    def vault(self) -> Vault:
        """The vault that encrypts credentials and tokens (built on first use)."""
        if self._vault is None:
            from brokersync._vault import Vault

            if self._keys is not None:
                spec = self._keys if isinstance(self._keys, str) else ",".join(self._keys)
                self._vault = Vault.from_spec(spec, source="the encryption keys given to BrokerSync")
            else:
                self._vault = Vault.default(data_dir())
        return self._vault

    @property
    def registry(self) -> BrokerRegistry:
        """Where brokers come from."""
        if self._registry is None:
            from brokersync._registry import get_registry

            self._registry = get_registry()
        return self._registry

    async def upgrade_database(self) -> tuple[str | None, str | None]:
        """Migrate the schema to the newest revision; return the revision (before, after)."""
        try:
            result = await self._store.upgrade()
        except (SQLAlchemyError, OSError) as exc:
            raise wrap_store_errors(exc, f"upgrading the schema of {safe_url(self.database_url)}") from None
        self._ready = True
        return result

    async def _ensure_ready(self) -> None:
        if self._ready:
            return
        async with self._ready_lock:
            await self._prepare()

    async def _prepare(self) -> None:
        if not self._ready:
            if self._auto_upgrade:
                await self.upgrade_database()
                return
            try:
                revision = await self._store.revision()
            except (SQLAlchemyError, OSError) as exc:
                raise wrap_store_errors(exc, f"opening {safe_url(self.database_url)}") from None
            if revision != Store.head():
                raise ConfigurationError(
                    f"the database {safe_url(self.database_url)} is at schema revision {revision or 'none'}, "
                    f"this brokersync needs {Store.head()}: run `brokersync db upgrade` (BrokerSync.upgrade_database())"
                )
            self._ready = True

    # -- brokers -----------------------------------------------------------------------------------

    @property
    def resilience(self) -> Resilience:
        """The rate limiter store, circuit breakers and retry policies every broker request goes through."""
        if self._resilience is None:
            from brokersync._resilience import Resilience

            options: dict[str, Any] = {"redis": self.redis_url, "sleep": self._sleep}
            if self._clock is not _utcnow:
                clock = self._clock
                options["clock"] = lambda: clock().timestamp()
            self._resilience = Resilience(**options)
        return self._resilience

    def _broker(self, key: str, environment: str | None, connection_id: str, metrics: RequestMetrics | None) -> Broker:
        options: dict[str, Any] = {"environment": environment, "connection_id": connection_id, "clock": self._clock}
        if self._sleep is not None:
            options["sleep"] = self._sleep
        if key in self._transports:
            options["transport"] = self._transports[key]
        if key in self._base_urls:
            options["base_url"] = self._base_urls[key]
        resilience = self.resilience
        run_metrics = metrics
        # Per-account limits (scope="account") count per connection: one login's budget at the broker.
        options["http"] = lambda broker: resilience.client_for(broker, metrics=run_metrics, account_id=connection_id)
        return self.registry.get(key, **options)

    # -- secrets -----------------------------------------------------------------------------------

    def _seal_credentials(self, connection_id: str, credentials: Mapping[str, str]) -> str:
        return self.vault.encrypt_json(dict(credentials), aad=f"{connection_id}:credentials")

    def _seal_token(self, connection_id: str, auth: AuthResult) -> str:
        return self.vault.encrypt_json(auth_to_json(auth), aad=f"{connection_id}:token")

    def _open_credentials(self, row: ConnectionRow) -> dict[str, Any]:
        if not row.credentials:
            raise NeedsReauthError(f"connection {row.id} has no stored credentials; reconnect it")
        return self.vault.decrypt_json(
            row.credentials, aad=f"{row.id}:credentials", what=f"the credentials of connection {row.id}"
        )

    def _open_token(self, row: ConnectionRow) -> AuthResult | None:
        if not row.token:
            return None
        data = self.vault.decrypt_json(row.token, aad=f"{row.id}:token", what=f"the token of connection {row.id}")
        return auth_from_json(data)

    @store_errors("re-encrypting credentials")
    async def rotate_keys(self, *, batch_size: int = 200) -> int:
        """Re-encrypt every stored credential and token under the vault's active key.

        One transaction per batch of connections; rows already under the active key are left alone.

        Returns:
            How many connection rows were re-encrypted.

        Raises:
            VaultError: A value cannot be decrypted (its key is missing); the batch is rolled back.
        """
        await self._ensure_ready()
        vault = self.vault

        def transform(connection_id: str, column: str, value: str) -> str | None:
            what = f"the {'credentials' if column == 'credentials' else 'token'} of connection {connection_id}"
            if not vault.needs_rotation(value, what=what):
                return None
            return vault.rotate(value, aad=f"{connection_id}:{column}", what=what)

        try:
            return await self._store.rotate_secrets(transform, batch_size=batch_size)
        except SQLAlchemyError as exc:
            raise wrap_store_errors(exc, "re-encrypting credentials") from None

    # -- connections -------------------------------------------------------------------------------

    @store_errors("connecting a broker")
    async def connect_broker(
        self, user_id: str, broker: str, credentials: Mapping[str, Any], environment: str | None = None
    ) -> ConnectResult:
        """Check ``credentials`` with the broker, then store the connection and its accounts.

        Raises:
            ConfigurationError: Unknown broker or environment, or credentials that do not match the
                broker's schema (nothing is sent).
            BrokerAuthError: The broker rejected the credentials (nothing is stored).
        """
        _require_text("user_id", user_id)
        await self._ensure_ready()
        connection_id = str(uuid.uuid4())
        async with self._broker(broker, environment, connection_id, None) as facade:
            checked = facade.metadata.validate_credentials(credentials)
            auth = await facade.authenticate(checked)
            account_list = await facade.get_accounts(auth)
            now = self._clock()
            values = {
                "id": connection_id,
                "user_id": user_id,
                "broker": broker,
                "environment": facade.environment,
                "status": ConnectionStatus.ACTIVE.value,
                "credentials": self._seal_credentials(connection_id, checked),
                "token": self._seal_token(connection_id, auth),
                "token_expires_at": auth.expires_at,
                "created_at": now,
                "updated_at": now,
            }
            try:
                await self._store.create_connection(values, account_list, now)
            except SQLAlchemyError as exc:
                raise wrap_store_errors(exc, f"storing the new {broker!r} connection") from None
            self._log.info(
                "connected {broker} for user {user}", broker=broker, user=user_id, connection_id=connection_id
            )
            return ConnectResult(
                connection_id=connection_id,
                user_id=user_id,
                broker=broker,
                environment=facade.environment,
                status=ConnectionStatus.ACTIVE,
                accounts=tuple(account_list),
            )

    async def _own_row(self, connection_id: str, user_id: str) -> ConnectionRow:
        _require_text("connection_id", connection_id)
        _require_text("user_id", user_id)
        await self._ensure_ready()
        row = await self._store.connection_row(connection_id)
        if row is None or row.user_id != user_id:
            # Same message either way: a user cannot probe for other users' connection ids.
            raise ConnectionNotFoundError(f"no connection {connection_id} for user {user_id}")
        return row

    @store_errors("reconnecting a broker")
    async def reconnect_broker(self, connection_id: str, user_id: str, credentials: Mapping[str, Any]) -> ConnectResult:
        """Give a connection new credentials; it keeps its id and its trades and becomes active.

        Raises:
            ConnectionNotFoundError: No such connection for this user.
            BrokerAuthError: The broker rejected the credentials (nothing changes).
        """
        row = await self._own_row(connection_id, user_id)
        async with self._broker(row.broker, row.environment, connection_id, None) as facade:
            checked = facade.metadata.validate_credentials(credentials)
            auth = await facade.authenticate(checked)
            account_list = await facade.get_accounts(auth)
            now = self._clock()
            await self._store.upsert_accounts(connection_id, account_list, now)
            await self._store.update_connection(
                connection_id,
                credentials=self._seal_credentials(connection_id, checked),
                token=self._seal_token(connection_id, auth),
                token_expires_at=auth.expires_at,
                status=ConnectionStatus.ACTIVE.value,
                last_error=None,
                updated_at=now,
            )
            return ConnectResult(
                connection_id=connection_id,
                user_id=user_id,
                broker=row.broker,
                environment=row.environment,
                status=ConnectionStatus.ACTIVE,
                accounts=tuple(account_list),
            )

    @store_errors("disconnecting a broker")
    async def disconnect_broker(self, connection_id: str, user_id: str, *, delete_trades: bool = False) -> None:
        """Forget a connection's secrets and stop syncing it.

        Args:
            connection_id: The connection.
            user_id: Its owner.
            delete_trades: Also delete the connection, its accounts and its trades (the audit
                rows stay). Otherwise the trades stay and the connection is ``disabled`` until
                reconnected.

        Raises:
            ConnectionNotFoundError: No such connection for this user.
        """
        await self._own_row(connection_id, user_id)
        if delete_trades:
            await self._store.delete_connection(connection_id)
            return
        await self._store.update_connection(
            connection_id,
            status=ConnectionStatus.DISABLED.value,
            credentials=None,
            token=None,
            token_expires_at=None,
            updated_at=self._clock(),
        )

    # -- listings ----------------------------------------------------------------------------------

    # -- syncing -----------------------------------------------------------------------------------

    @store_errors("starting a sync")
    async def sync_broker_trades(
        self,
        connection_id: str,
        user_id: str,
        trigger: SyncTrigger | str = SyncTrigger.MANUAL,
        since: dt.datetime | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> SyncResult:
        """Sync one connection's trades; see :mod:`brokersync._sync` for the guarantees.

        Args:
            connection_id: The connection.
            user_id: Its owner.
            trigger: ``"manual"`` (all history, or from ``since``) or ``"scheduled"`` (each
                account from its watermark minus the lookback, with the plugin's stored cursor).
            since: For manual syncs: only trades from this tz-aware time on.
            on_progress: Called (sync or async) with a :class:`SyncProgress` after each stored batch.

        Returns:
            The run's result (also stored as an audit row).

        Raises:
            ConnectionNotFoundError: No such connection for this user.
            NeedsReauthError: The connection needs new credentials (see :meth:`reconnect_broker`).
            SyncInProgressError: Another process is syncing this connection right now.
            BrokerError: The broker failed (the run is recorded as failed; an auth failure also
                marks the connection ``needs_reauth``).
            StoreError: The database failed (the run is recorded as failed when possible).
        """
        result, error = await self._runner.sync(connection_id, user_id, SyncTrigger(trigger), since, on_progress)
        if error is not None:
            raise error
        return result

    @store_errors("listing the connections to sync")
    async def run_scheduled_sync(self, concurrency: int | None = None) -> list[SyncResult]:
        """Sync every active connection (``needs_reauth`` and disabled ones are skipped).

        At most ``concurrency`` (default: the engine's setting) run at once. One connection failing
        never stops the others: its result has ``status == "failed"`` and the ``error``.

        Returns:
            One result per active connection, in connection order.
        """
        await self._ensure_ready()
        active = await self._store.list_connections(status=ConnectionStatus.ACTIVE, with_accounts=False)
        return await self._runner.sync_each(active, concurrency=concurrency or self.settings.concurrency)

    # -- maintenance -------------------------------------------------------------------------------

    @store_errors("checking the stored secrets")
    async def verify_secrets(self, connection_ids: Sequence[str] | None = None) -> dict[str, str | None]:
        """Try to decrypt every stored credential and token with the configured keys.

        Args:
            connection_ids: Only these connections (default: every connection of every user).

        Returns:
            Connection id -> ``None`` when its secrets decrypt, else why not (never a secret).

        Raises:
            VaultError: The keys themselves cannot be loaded (nothing could be decrypted).
        """
        from brokersync.errors import VaultError

        await self._ensure_ready()
        vault = self.vault  # a key configuration that cannot load fails the whole check
        if connection_ids is None:
            connection_ids = [c.id for c in await self._store.list_connections(with_accounts=False)]
        problems: dict[str, str | None] = {}
        for connection_id in connection_ids:
            row = await self._store.connection_row(connection_id)
            if row is None:
                continue
            problems[connection_id] = None
            try:
                if row.credentials:
                    vault.decrypt_json(
                        row.credentials, aad=f"{row.id}:credentials", what=f"the credentials of {row.id}"
                    )
                if row.token:
                    vault.decrypt_json(row.token, aad=f"{row.id}:token", what=f"the token of {row.id}")
            except VaultError as exc:
                problems[connection_id] = str(exc)
        return problems

    @store_errors("resetting a connection's sync state")
    async def reset_sync_state(self, connection_id: str, user_id: str) -> int:
        """Forget the watermarks and cursors of a connection's accounts: its next sync reads all history.

        Trades already stored stay (the next sync finds them unchanged).

        Returns:
            How many accounts had a stored sync position.

        Raises:
            ConnectionNotFoundError: No such connection for this user.
            SyncInProgressError: A sync of the connection is running (its lease is held).
        """
        from brokersync.errors import SyncInProgressError

        await self._own_row(connection_id, user_id)
        forgotten = await self._store.reset_sync_cursors(
            connection_id, holder=self.holder, now=self._clock(), ttl=self.settings.lease_ttl
        )
        if forgotten is None:
            raise SyncInProgressError(f"connection {connection_id} is being synced; try again when that sync ends")
        return forgotten
