"""The sync engine: connect brokers, sync their trades, keep the audit trail.

``BrokerSync`` is the object integrators (and the CLI) use. It holds the configuration (database,
vault, registry, transports, clock) and implements the seed's operations: ``connect_broker``,
``reconnect_broker``, ``sync_broker_trades``, ``run_scheduled_sync`` and ``disconnect_broker``,
plus listings, status, key rotation and schema upgrades.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs
from sqlalchemy.exc import SQLAlchemyError

from brokersync._clocks import MonotonicClock, Sleep, WallClock, utcnow
from brokersync._config import EngineSettings, data_dir, default_database_url, lease_ttl_from_env
from brokersync._engine._brokers import BrokerFactory
from brokersync._engine._fanout import sync_each
from brokersync._engine._imports import EngineImports
from brokersync._engine._keyguard import missing_key_file, prepare_key_file
from brokersync._engine._maintenance import reset_sync_state, verify_secrets
from brokersync._engine._parts import EngineParts, require_text
from brokersync._engine._reads import EngineReads
from brokersync._engine._schema import Readiness
from brokersync._engine._secrets import Secrets
from brokersync._engine._start import FILE_ONLY, sync_connection
from brokersync._engine._tokens import TokenLocks
from brokersync._engine._unlock import EngineLeases
from brokersync._log import get_logger
from brokersync._pairing import PairingMethod
from brokersync._store import Store, store_errors, wrap_store_errors
from brokersync.errors import AccountAlreadyConnectedError
from brokersync.results import ConnectionStatus, ConnectResult, ProgressCallback, SyncResult, SyncTrigger

if TYPE_CHECKING:
    import httpx

    from brokersync._registry import BrokerRegistry
    from brokersync._resilience import Resilience
    from brokersync._vault import Vault
    from brokersync.models import Account

__all__ = ["BrokerSync"]


class BrokerSync(EngineReads, EngineImports, EngineLeases):
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
        clock: The wall clock: returns the current tz-aware UTC time (tests inject one).
        monotonic: Monotonic seconds for rate-limit windows, circuit breakers and retry budgets
            (tests that inject ``sleep`` inject this too, e.g. ``FakeClock.monotonic``).
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
        clock: WallClock | None = None,
        monotonic: MonotonicClock | None = None,
        sleep: Sleep | None = None,
        settings: EngineSettings | None = None,
        lookback: dt.timedelta | None = None,
        lease_ttl: dt.timedelta | None = None,
        concurrency: int | None = None,
        auto_upgrade: bool | None = None,
    ) -> None:
        self.database_url = database_url or default_database_url()
        store = Store(self.database_url)
        if lease_ttl is None and settings is None:
            lease_ttl = lease_ttl_from_env()
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
        self._clock: WallClock = clock or utcnow
        self._monotonic = monotonic
        self._sleep = sleep
        self._resilience: Resilience | None = resilience
        self._orphaned_secrets: int | None = None  # secrets whose missing key file _prepare_keys found
        self._owns_resilience = resilience is None
        self.holder = f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._log = get_logger(component="engine")
        self._readiness = Readiness(
            store,
            self.database_url,
            auto_upgrade=store.dialect == "sqlite" if auto_upgrade is None else auto_upgrade,
            then=self._prepare_keys,
        )
        parts = EngineParts(
            store=store,
            readiness=self._readiness,
            secrets=Secrets(lambda: self.vault),
            brokers=BrokerFactory(
                registry=lambda: self.registry,
                resilience=lambda: self.resilience,
                clock=self._clock,
                sleep=sleep,
                transports=transports or {},
                base_urls=base_urls or {},
            ),
            settings=self.settings,
            clock=self._clock,
            holder=self.holder,
            token_locks=TokenLocks(),
            log=self._log,
        )
        EngineReads.__init__(self, parts, self.database_url)
        EngineImports.__init__(self, parts)
        EngineLeases.__init__(self, parts)
        self._parts = parts
        self._store = store

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
            from brokersync._keys import ENV_VAR, key_file_path
            from brokersync._vault import Vault

            if self._keys is not None:
                spec = self._keys if isinstance(self._keys, str) else ",".join(self._keys)
                self._vault = Vault.from_spec(spec, source="the encryption keys given to BrokerSync")
            elif ENV_VAR in os.environ:
                self._vault = Vault.from_env()
            else:  # created (on a database without secrets) by the first operation, never here
                path = key_file_path(data_dir())
                if not path.exists():
                    raise missing_key_file(path, self.database_url, self._orphaned_secrets)
                self._vault = Vault.from_key_file(path)
        return self._vault

    async def _prepare_keys(self) -> None:
        if self._vault is None and self._keys is None:
            try:
                self._orphaned_secrets = await prepare_key_file(self._store, data_dir())
            except SQLAlchemyError as exc:
                raise wrap_store_errors(exc, "checking for encrypted secrets") from None

    async def check_ready(self) -> None:
        """Check the schema (migrating it when allowed) and the key file; every operation does this first.

        On a database without secrets and no configured keys, this creates the data directory's
        key file (a warning names it: back it up).

        Raises:
            ConfigurationError: The schema is old and may not be migrated here, or the key file is
                missing while the database holds secrets encrypted with it.
        """
        await self._readiness.ensure()

    @property
    def registry(self) -> BrokerRegistry:
        """Where brokers come from."""
        if self._registry is None:
            from brokersync._registry import get_registry

            self._registry = get_registry()
        return self._registry

    async def upgrade_database(self) -> tuple[str | None, str | None]:
        """Migrate the schema to the newest revision; return the revision (before, after)."""
        return await self._readiness.upgrade()

    # -- brokers -----------------------------------------------------------------------------------

    @property
    def resilience(self) -> Resilience:
        """The rate limiter store, circuit breakers and retry policies every broker request goes through."""
        if self._resilience is None:
            from brokersync._resilience import Resilience

            self._resilience = Resilience(
                redis=self.redis_url,
                sleep=self._sleep,
                clock=self._monotonic,
                wall_clock=self._clock if self._clock is not utcnow else None,
            )
        return self._resilience

    # -- secrets -----------------------------------------------------------------------------------

    @store_errors("re-encrypting credentials")
    async def rotate_keys(self, *, batch_size: int = 200) -> int:
        """Re-encrypt every stored credential and token under the vault's active key.

        One transaction per batch of connections; rows already under the active key are left alone.

        Returns:
            How many connection rows were re-encrypted.

        Raises:
            VaultError: A value cannot be decrypted (its key is missing); the batch is rolled back.
        """
        await self._readiness.ensure()
        transform = self._parts.secrets.rotation()
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
            AccountAlreadyConnectedError: One of the user's connections already has an account
                these credentials reach (same broker and environment): use :meth:`reconnect_broker`
                on it instead (nothing is stored).
        """
        require_text("user_id", user_id)
        await self._readiness.ensure()
        self._parts.secrets.check()  # no broker traffic without a usable vault
        connection_id = str(uuid.uuid4())
        async with self._parts.brokers.facade(broker, environment, connection_id, None) as facade:
            checked = facade.metadata.validate_credentials(credentials)
            auth = await facade.authenticate(checked)
            account_list = await facade.get_accounts(auth)
            await self._refuse_connected(user_id, broker, facade.environment, account_list)
            now = self._clock()
            values = {
                "id": connection_id,
                "user_id": user_id,
                "broker": broker,
                "environment": facade.environment,
                "status": ConnectionStatus.ACTIVE.value,
                "credentials": self._parts.secrets.seal_credentials(connection_id, checked),
                "token": self._parts.secrets.seal_token(connection_id, auth),
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

    async def _refuse_connected(
        self, user_id: str, broker: str, environment: str, account_list: Sequence[Account]
    ) -> None:
        owners = await self._store.account_owners(
            user_id=user_id, broker=broker, environment=environment, account_ids=[a.id for a in account_list]
        )
        if not owners:
            return
        existing = next(iter(owners.values()))
        taken = tuple(sorted(a for a, owner in owners.items() if owner == existing))
        raise AccountAlreadyConnectedError(
            f"user {user_id} already has the {broker} ({environment}) account(s) {', '.join(taken)} in connection "
            f"{existing}: connecting them again would store every trade twice. To give that connection new "
            f"credentials, run `brokersync reconnect {existing}` (BrokerSync.reconnect_broker)",
            connection_id=existing,
            account_ids=taken,
        )

    @store_errors("reconnecting a broker")
    async def reconnect_broker(self, connection_id: str, user_id: str, credentials: Mapping[str, Any]) -> ConnectResult:
        """Give a connection new credentials; it keeps its id and its trades and becomes active.

        Raises:
            ConnectionNotFoundError: No such connection for this user.
            BrokerAuthError: The broker rejected the credentials (nothing changes).
        """
        row = await self._parts.own_row(connection_id, user_id)
        async with self._parts.brokers.facade(row.broker, row.environment, connection_id, None) as facade:
            checked = facade.metadata.validate_credentials(credentials)
            auth = await facade.authenticate(checked)
            account_list = await facade.get_accounts(auth)
            now = self._clock()
            await self._store.upsert_accounts(connection_id, account_list, now)
            await self._store.update_connection(
                connection_id,
                credentials=self._parts.secrets.seal_credentials(connection_id, checked),
                token=self._parts.secrets.seal_token(connection_id, auth),
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
        await self._parts.own_row(connection_id, user_id)
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

    # -- pairing -----------------------------------------------------------------------------------

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
        await self._parts.own_row(connection_id, user_id)
        return await self._store.set_pairing_method(connection_id, chosen.value, now=self._clock())

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
        """Sync one connection's trades; see ``docs/architecture.md`` for its steps.

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
        result, error = await sync_connection(
            self._parts, connection_id, user_id, SyncTrigger(trigger), since, on_progress
        )
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
        await self._readiness.ensure()
        listed = await self._store.list_connections(status=ConnectionStatus.ACTIVE, with_accounts=False)
        active = [c for c in listed if c.environment != FILE_ONLY]  # file-only connections have no API
        return await sync_each(self._parts, active, concurrency=concurrency or self.settings.concurrency)

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
        return await verify_secrets(self._parts, connection_ids)

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
        return await reset_sync_state(self._parts, connection_id, user_id)
