"""The normalized data model: what every broker plugin produces and every integrator reads.

All models are frozen attrs classes (change them with :func:`attrs.evolve`). They validate on
construction: money is :class:`~decimal.Decimal` (a ``float`` is refused, it cannot hold cents
exactly), times are timezone-aware and stored in UTC (a naive ``datetime`` is refused), and secret
values never appear in a ``repr``.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import attrs

from brokersync import _auth_model, _executions_model, _token_auth
from brokersync._auth_model import AuthResult, Credentials
from brokersync._executions_model import (
    AssetClass,
    Direction,
    Execution,
    ExecutionCancellation,
    ExecutionKind,
    Instrument,
    OpenClose,
    OptionRight,
    Position,
    Reports,
    Side,
    as_executions,
    as_positions,
)
from brokersync._exports import show_as
from brokersync._redact import register_secret_names
from brokersync._token_auth import TokenAuth
from brokersync._validators import (
    as_currency,
    as_currency_optional,
    as_decimal,
    as_decimal_optional,
    as_mapping,
    as_text,
    as_text_optional,
    as_utc,
    as_utc_optional,
    check_currency,
    check_decimal,
    check_key,
    check_mapping,
    check_text,
    check_time,
    non_negative,
    positive,
)
from brokersync.errors import ConfigurationError

__all__ = [
    "Account",
    "AssetClass",
    "AuthResult",
    "AuthType",
    "BrokerMetadata",
    "Capabilities",
    "CredentialField",
    "Credentials",
    "CursorKind",
    "Direction",
    "Execution",
    "ExecutionCancellation",
    "ExecutionKind",
    "Instrument",
    "OpenClose",
    "OptionRight",
    "Position",
    "RateLimit",
    "Reports",
    "RetryPolicy",
    "Side",
    "TokenAuth",
    "Trade",
    "TradeCancellation",
    "TradePage",
]


class AuthType(enum.StrEnum):
    """How a broker authenticates an API client."""

    PASSWORD = "password"  # noqa: S105 - a name, not a password. username/password (+ app key) exchanged for a short-lived token
    API_KEY = "api_key"  # key/secret pair
    TOKEN = "token"  # noqa: S105 - a name, not a token. A long-lived token the user generates at the broker
    OAUTH = "oauth"
    FILE = "file"  # no API: the broker's data arrives as export files (``brokersync import``)


class CursorKind(enum.StrEnum):
    """What a broker's incremental sync is keyed on."""

    NONE = "none"  # every sync fetches everything the broker offers
    TIME = "time"  # the plugin honours ``since`` (a datetime)
    OPAQUE = "opaque"  # the plugin returns an opaque cursor (e.g. a transaction id) in each TradePage


# --- accounts and trades ----------------------------------------------------------------------------


def _as_reports_optional(value: Reports | str | None) -> Reports | None:
    return None if value is None else Reports(value)


@attrs.frozen(kw_only=True)
class Account:
    """One account at a broker, as the broker identifies it.

    ``reports`` declares what this account's ``get_trades`` pages carry when it differs from the
    broker's :attr:`Capabilities.reports` (a broker with both fill accounts and accounts it pairs by
    itself); ``None`` (the default) means the broker's declaration.
    """

    id: str = attrs.field(converter=as_text, validator=check_text)
    name: str | None = attrs.field(default=None, converter=as_text_optional, validator=check_text)
    currency: str | None = attrs.field(default=None, converter=as_currency_optional, validator=check_currency)
    type: str | None = attrs.field(default=None, converter=as_text_optional, validator=check_text)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=as_mapping, validator=check_mapping, repr=False)
    reports: Reports | None = attrs.field(default=None, converter=_as_reports_optional)
    """Round trips, executions or both for this account; ``None``: ``Capabilities.reports`` of the broker."""


def _check_trade(instance: Trade, attribute: attrs.Attribute[Any], value: Any) -> None:
    if instance.quantity <= 0:
        raise ValueError(f"Trade.quantity must be positive, got {instance.quantity}")
    if instance.entry_price < 0:
        raise ValueError(f"Trade.entry_price must not be negative, got {instance.entry_price}")
    if instance.exit_price is not None and instance.exit_price < 0:
        raise ValueError(f"Trade.exit_price must not be negative, got {instance.exit_price}")
    if instance.closed_at is not None and instance.closed_at < instance.opened_at:
        raise ValueError(
            f"Trade.closed_at ({instance.closed_at.isoformat()}) is before opened_at ({instance.opened_at.isoformat()})"
        )


@attrs.frozen(kw_only=True)
class Trade:
    """One round-trip trade: an entry and (once closed) an exit, normalized across brokers.

    ``broker_trade_id`` is unique per broker account and stable across syncs; it is the dedupe key.
    An open trade has ``closed_at``/``exit_price``/``realized_pnl`` set to ``None`` and is updated
    when the broker reports it closed. ``raw`` keeps the broker's own record for audit.
    """

    broker_trade_id: str = attrs.field(converter=as_text, validator=check_text)
    account_id: str = attrs.field(converter=as_text, validator=check_text)
    symbol: str = attrs.field(converter=as_text, validator=check_text)
    direction: Direction = attrs.field(converter=Direction)
    opened_at: dt.datetime = attrs.field(converter=as_utc, validator=check_time)
    closed_at: dt.datetime | None = attrs.field(default=None, converter=as_utc_optional, validator=check_time)
    entry_price: Decimal = attrs.field(converter=as_decimal, validator=check_decimal)
    exit_price: Decimal | None = attrs.field(default=None, converter=as_decimal_optional, validator=check_decimal)
    quantity: Decimal = attrs.field(converter=as_decimal, validator=check_decimal)
    realized_pnl: Decimal | None = attrs.field(default=None, converter=as_decimal_optional, validator=check_decimal)
    fees: Decimal = attrs.field(default=Decimal(0), converter=as_decimal, validator=check_decimal)
    currency: str = attrs.field(converter=as_currency, validator=check_currency)
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=as_mapping, validator=[check_mapping, _check_trade], repr=False, eq=False
    )

    @property
    def is_closed(self) -> bool:
        """Whether the trade has been closed."""
        return self.closed_at is not None


@attrs.frozen(kw_only=True)
class TradeCancellation:
    """The broker cancelled ("busted") a trade it reported: a tombstone for that trade.

    The cancelled trade keeps its stored row (history, audit) but leaves the user's trade listings
    and exports by default. A cancellation may arrive before, with, or after the trade it cancels,
    and a broker may report it again: it is recorded once per (connection, account, trade id).

    Attributes:
        account_id: The broker account of the cancelled trade.
        broker_trade_id: The ``broker_trade_id`` of the trade being cancelled.
        cancelled_at: When the broker cancelled it (tz-aware, stored in UTC; naive is refused).
        reason: The broker's reason or code, if it gives one (e.g. IBKR's ``Ca``).
        raw: The broker's own cancellation record, kept for audit.
    """

    account_id: str = attrs.field(converter=as_text, validator=check_text)
    broker_trade_id: str = attrs.field(converter=as_text, validator=check_text)
    cancelled_at: dt.datetime = attrs.field(converter=as_utc, validator=check_time)
    reason: str | None = attrs.field(default=None, converter=as_text_optional, validator=check_text)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=as_mapping, validator=check_mapping, repr=False)


def _as_records(value: Iterable[Trade | Mapping[str, Any]]) -> tuple[Trade | Mapping[str, Any], ...]:
    return tuple(value)  # typed (not converter=tuple) so mypy checks what callers pass


def _as_cancellations(
    value: Iterable[TradeCancellation | ExecutionCancellation | Mapping[str, Any]],
) -> tuple[TradeCancellation | ExecutionCancellation | Mapping[str, Any], ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class TradePage:
    """One batch of trades from ``get_trades``, with the cursor that resumes after it.

    ``records`` may hold :class:`Trade` objects or plain mappings with the same field names (the
    core validates each record on its own, so one bad record is reported and skipped, never stored,
    and does not cost the rest of the page). ``cursor`` is opaque to the core: it is persisted with
    the page's trades and handed back unchanged on the next sync.

    ``cancellations`` reports trades the broker cancelled (busted), as :class:`TradeCancellation`
    objects or mappings with its field names (``account_id`` defaults to the page's account), and
    busted executions as :class:`ExecutionCancellation` (a mapping with ``broker_execution_id``).
    They are validated one by one like ``records`` and stored in the same transaction as the page's
    trades and cursor.

    ``executions`` reports fills (:class:`Execution` or mappings) for the core to pair into round
    trips; ``positions``, when not ``None``, is the account's open-position snapshot for brokers
    that pair by themselves (it replaces the previous snapshot; ``()`` means flat).
    """

    records: Sequence[Trade | Mapping[str, Any]] = attrs.field(default=(), converter=_as_records)
    cursor: str | None = None
    cancellations: Sequence[TradeCancellation | ExecutionCancellation | Mapping[str, Any]] = attrs.field(
        default=(), converter=_as_cancellations
    )
    executions: Sequence[Execution | Mapping[str, Any]] = attrs.field(default=(), converter=as_executions)
    positions: Sequence[Position | Mapping[str, Any]] | None = attrs.field(default=None, converter=as_positions)


# --- metadata ---------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CredentialField:
    """One field of a broker's credential schema."""

    name: str = attrs.field(validator=check_key)
    label: str = ""
    secret: bool = False
    required: bool = True
    description: str = ""
    default: str | None = None


@attrs.frozen(kw_only=True)
class RateLimit:
    """A sliding-window request limit: at most ``max_requests`` per ``window_seconds``.

    ``scope`` says whether the window is shared by every connection of the broker (``"broker"``)
    or kept per broker account (``"account"``). ``name`` tells several limits apart (e.g. an
    ``"auth"`` class of endpoints with a stricter limit than ``"default"``).
    """

    max_requests: int = attrs.field(validator=positive)
    window_seconds: float = attrs.field(validator=positive)
    scope: Literal["broker", "account"] = "broker"
    name: str = "default"


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How the core retries a broker's transient failures (exponential backoff with jitter).

    ``Retry-After`` from the broker always wins over the computed delay; a ``Retry-After`` longer
    than ``max_retry_after`` ends the attempt with :class:`~brokersync.BrokerRateLimitError`
    instead of sleeping inside a sync.
    """

    max_retries: int = attrs.field(default=3, validator=non_negative)
    initial_delay: float = attrs.field(default=1.0, validator=non_negative)
    max_delay: float = attrs.field(default=30.0, validator=positive)
    multiplier: float = attrs.field(default=2.0, validator=positive)
    jitter: float = attrs.field(default=0.2, validator=non_negative)
    timeout: float = attrs.field(default=60.0, validator=positive)
    request_timeout: float = attrs.field(default=30.0, validator=positive)
    max_retry_after: float = attrs.field(default=120.0, validator=positive)


@attrs.frozen(kw_only=True)
class Capabilities:
    """What a broker plugin can do (CCXT-style ``has`` flags)."""

    refresh_token: bool = False
    historical: bool = True
    max_history_days: int | None = None
    cursor: CursorKind = attrs.field(default=CursorKind.TIME, converter=CursorKind)
    reports: Reports = attrs.field(default=Reports.ROUND_TRIPS, converter=Reports)
    """Whether accounts report round trips, executions for the core to pair, or both."""
    positions: bool = False
    """Whether ``get_trades`` reports open-position snapshots (``TradePage.positions``)."""
    min_sync_interval_seconds: float | None = None
    """The broker refreshes its data at most this often (IBKR Flex: daily); the scheduler waits this long."""


def _as_fields(value: Iterable[CredentialField]) -> tuple[CredentialField, ...]:
    return tuple(value)  # typed converters (not tuple/dict) so mypy checks what plugins pass


def _as_limits(value: Iterable[RateLimit]) -> tuple[RateLimit, ...]:
    return tuple(value)


def _as_names(value: Iterable[str]) -> tuple[str, ...]:
    if isinstance(value, str):
        raise TypeError("BrokerMetadata.secret_response_fields must be a list of field names, not one string")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise TypeError(f"BrokerMetadata.secret_response_fields holds {name!r}; expected field names")
    return names


def _as_environments(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


def _check_environments(instance: BrokerMetadata, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value and instance.auth_type is AuthType.FILE:
        return  # a file-only broker has no API to reach
    if not value:
        raise ValueError("BrokerMetadata.environments must name at least one environment and its base URL")
    for name, url in value.items():
        if not isinstance(name, str) or not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"BrokerMetadata.environments[{name!r}] must be an http(s) base URL, got {url!r}")


@attrs.frozen(kw_only=True)
class BrokerMetadata:
    """Everything the core and integrators need to know about a broker before calling it.

    Attributes:
        key: The broker key (the entry point name), e.g. ``"tradovate"``.
        name: Human name, e.g. ``"Tradovate"``.
        description: One sentence for listings.
        auth_type: How the broker authenticates.
        credential_fields: The credential schema; secret fields are marked.
        environments: Environment name -> base URL, e.g. ``{"live": ..., "demo": ...}``.
        default_environment: Used when a connection does not name one (default: the first).
        capabilities: What the plugin supports.
        rate_limits: The broker's request limits, applied by the core to every request.
        retry: How transient failures are retried.
        docs_url: Where the broker's API is documented.
        plugin_api: The brokersync plugin API versions the plugin supports, e.g. ``">=1,<2"``.
        secret_response_fields: Names of fields in the broker's requests and responses that carry
            secrets beyond the credential schema (e.g. ``"mdAccessToken"``, a ``t`` query
            parameter): their values are masked in every log line and error message.
        token_auth: How ``ctx.http`` attaches the access token to requests (``None``: the plugin
            sends it itself; the core still renews a rejected token and swaps it into the
            plugin's headers and query parameters).
    """

    key: str = attrs.field(validator=check_key)
    name: str = attrs.field(converter=str)
    description: str = ""
    auth_type: AuthType = attrs.field(converter=AuthType)
    credential_fields: tuple[CredentialField, ...] = attrs.field(converter=_as_fields)
    environments: Mapping[str, str] = attrs.field(converter=_as_environments, validator=_check_environments)
    default_environment: str | None = None
    capabilities: Capabilities = attrs.field(factory=Capabilities)
    rate_limits: tuple[RateLimit, ...] = attrs.field(default=(), converter=_as_limits)
    retry: RetryPolicy = attrs.field(factory=RetryPolicy)
    docs_url: str | None = None
    plugin_api: str = ">=1,<2"
    secret_response_fields: tuple[str, ...] = attrs.field(default=(), converter=_as_names)
    token_auth: TokenAuth | None = None

    def __attrs_post_init__(self) -> None:
        register_secret_names([*self.secret_fields, *self.secret_response_fields])
        names = [f.name for f in self.credential_fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"BrokerMetadata.credential_fields repeats {', '.join(duplicates)}")
        if self.default_environment is not None and self.default_environment not in self.environments:
            raise ValueError(
                f"BrokerMetadata.default_environment {self.default_environment!r} is not one of "
                f"{sorted(self.environments)}"
            )

    @property
    def secret_fields(self) -> frozenset[str]:
        """Names of the credential fields that hold secrets."""
        return frozenset(f.name for f in self.credential_fields if f.secret)

    def resolve_environment(self, environment: str | None) -> str:
        """Return the environment to use for ``environment`` (``None`` means the default)."""
        if environment is None:
            if not self.environments:
                return "file"  # a file-only broker (AuthType.FILE)
            return self.default_environment or next(iter(self.environments))
        if environment not in self.environments:
            raise ConfigurationError(
                f"broker {self.key!r} has no environment {environment!r}; choose one of "
                f"{', '.join(sorted(self.environments))}"
            )
        return environment

    def validate_credentials(self, values: Mapping[str, Any]) -> Credentials:
        """Check ``values`` against the credential schema, before any network call.

        Raises:
            ConfigurationError: naming every missing, unknown or non-text field (never a value).
        """
        if isinstance(values, Credentials):
            values = dict(values.items())
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"credentials for {self.key!r} must be a mapping of field name to value")
        known = {f.name: f for f in self.credential_fields}
        problems: list[str] = []
        unknown = sorted(set(values) - set(known))
        if unknown:
            problems.append(f"unknown field(s) {', '.join(map(str, unknown))} (expected: {', '.join(known)})")
        result: dict[str, str] = {}
        for name, spec in known.items():
            value = values.get(name, spec.default)
            if value is None or value == "":
                if spec.required:
                    problems.append(f"missing required field {name!r}")
                continue
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                problems.append(f"field {name!r} must be text, got {type(value).__name__}")
                continue
            result[name] = value
        if problems:
            raise ConfigurationError(f"invalid credentials for broker {self.key!r}: {'; '.join(problems)}")
        return Credentials(result, secret_fields=sorted(self.secret_fields))


for _module in (_auth_model, _executions_model, _token_auth):  # shown as brokersync.models.X, not the private module
    for _name in _module.__all__:
        if _name[0].isupper():
            show_as(getattr(_module, _name), __name__)
