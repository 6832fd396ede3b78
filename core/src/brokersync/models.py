"""The normalized data model: what every broker plugin produces and every integrator reads.

All models are frozen attrs classes (change them with :func:`attrs.evolve`). They validate on
construction: money is :class:`~decimal.Decimal` (a ``float`` is refused, it cannot hold cents
exactly), times are timezone-aware and stored in UTC (a naive ``datetime`` is refused), and secret
values never appear in a ``repr``.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, Literal

import attrs

from brokersync._redact import MASK, register_secret, register_secrets
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


class Direction(enum.StrEnum):
    """Which way a round-trip trade was opened."""

    LONG = "long"
    SHORT = "short"


class Side(enum.StrEnum):
    """Which way one execution (fill) went."""

    BUY = "buy"
    SELL = "sell"

    @property
    def direction(self) -> Direction:
        """The direction of a position this side opens (a buy opens long, a sell opens short)."""
        return Direction.LONG if self is Side.BUY else Direction.SHORT

    @property
    def sign(self) -> int:
        """``+1`` for a buy, ``-1`` for a sell: the sign of the position change."""
        return 1 if self is Side.BUY else -1


class AssetClass(enum.StrEnum):
    """What kind of instrument was traded."""

    STOCK = "stock"
    FUTURE = "future"
    OPTION = "option"
    FUTURE_OPTION = "future_option"
    FOREX = "forex"
    CRYPTO = "crypto"
    CFD = "cfd"
    BOND = "bond"
    FUND = "fund"
    OTHER = "other"


class OptionRight(enum.StrEnum):
    """Whether an option is a put or a call."""

    PUT = "put"
    CALL = "call"


class ExecutionKind(enum.StrEnum):
    """What produced an execution: a fill, or an event that closes an option position."""

    FILL = "fill"
    EXPIRY = "expiry"  # the option expired worthless: closes the position at price 0
    ASSIGNMENT = "assignment"  # a short option was assigned: closes the option leg at the recorded price
    EXERCISE = "exercise"  # a long option was exercised: closes the option leg at the recorded price


class OpenClose(enum.StrEnum):
    """The broker's open/close intent of an execution, where it reports one (informational)."""

    OPEN = "open"
    CLOSE = "close"
    CLOSE_OPEN = "close_open"  # one fill that closes a position and opens the other way (IBKR ``C;O``)


class Reports(enum.StrEnum):
    """What a broker's ``get_trades`` reports for an account."""

    ROUND_TRIPS = "round_trips"  # the broker pairs by itself: the plugin yields round-trip trades
    EXECUTIONS = "executions"  # the plugin yields executions; the core pairs them into round trips
    BOTH = "both"  # round trips the broker paired, with the executions (fills) behind them


class AuthType(enum.StrEnum):
    """How a broker authenticates an API client."""

    PASSWORD = "password"  # noqa: S105 - a name, not a password. username/password (+ app key) exchanged for a short-lived token
    API_KEY = "api_key"  # key/secret pair
    TOKEN = "token"  # noqa: S105 - a name, not a token. A long-lived token the user generates at the broker
    OAUTH = "oauth"


class CursorKind(enum.StrEnum):
    """What a broker's incremental sync is keyed on."""

    NONE = "none"  # every sync fetches everything the broker offers
    TIME = "time"  # the plugin honours ``since`` (a datetime)
    OPAQUE = "opaque"  # the plugin returns an opaque cursor (e.g. a transaction id) in each TradePage


# --- field converters and validators ----------------------------------------------------------------
# Converters normalize what is unambiguous (aware time -> UTC, int -> Decimal, strip text) and pass
# anything else through unchanged; validators then refuse it with a message naming the field.


def _where(instance: object, attribute: attrs.Attribute[Any]) -> str:
    return f"{type(instance).__name__}.{attribute.name}"


def _aware(value: object) -> bool:
    return isinstance(value, dt.datetime) and value.tzinfo is not None and value.utcoffset() is not None


def _as_utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC) if _aware(value) else value


def _as_utc_optional(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(dt.UTC) if value is not None and _aware(value) else value


def _check_time(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if not isinstance(value, dt.datetime):
        raise TypeError(f"{_where(instance, attribute)} must be a datetime, got {type(value).__name__} {value!r}")
    if not _aware(value):
        raise ValueError(
            f"{_where(instance, attribute)} is a naive datetime ({value.isoformat()}); brokersync needs "
            "timezone-aware times: attach the broker's time zone, e.g. value.replace(tzinfo=UTC)"
        )


def _as_decimal(value: Decimal | int) -> Decimal:
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value  # type: ignore[return-value]  # anything else is refused by _check_decimal


def _as_decimal_optional(value: Decimal | int | None) -> Decimal | None:
    return None if value is None else _as_decimal(value)


def _check_decimal(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if not isinstance(value, Decimal):
        hint = f"Decimal({str(value)!r})" if isinstance(value, float) else "a Decimal"
        raise TypeError(
            f"{_where(instance, attribute)} must be a Decimal, got {type(value).__name__} {value!r}; "
            f"money and quantities are exact in brokersync: pass {hint}"
        )
    if not value.is_finite():
        raise ValueError(f"{_where(instance, attribute)} must be a finite number, got {value!r}")


def _as_text(value: str | int) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value.strip() if isinstance(value, str) else value  # type: ignore[return-value]  # see _check_text


def _as_text_optional(value: str | int | None) -> str | None:
    return None if value is None else _as_text(value)


def _check_text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if not isinstance(value, str):
        raise TypeError(f"{_where(instance, attribute)} must be a string, got {type(value).__name__} {value!r}")
    if not value:
        raise ValueError(f"{_where(instance, attribute)} must not be empty")


_CURRENCY = re.compile(r"^[A-Z0-9]{2,12}$")


def _as_currency(value: str) -> str:
    return value.strip().upper() if isinstance(value, str) else value


def _as_currency_optional(value: str | None) -> str | None:
    return None if value is None else _as_currency(value)


def _check_currency(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.default is None:
        return
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise ValueError(f"{_where(instance, attribute)} must be a currency code like 'USD', got {value!r}")


def _as_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if value is None:
        return {}
    return dict(value) if isinstance(value, Mapping) else value


def _check_mapping(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{_where(instance, attribute)} must be a mapping, got {type(value).__name__}")


# --- credentials and auth ---------------------------------------------------------------------------


class Credentials(Mapping[str, str]):
    """A broker connection's credential values, keyed by the broker's credential field names.

    Behaves as a read-only mapping (``credentials["password"]``). Secret fields (as the broker's
    metadata marks them) are masked in ``repr`` and registered with the redactor, so they cannot
    leak through logs or error messages. Build one with :meth:`BrokerMetadata.validate_credentials`.
    """

    __slots__ = ("_secret_fields", "_values")

    def __init__(self, values: Mapping[str, str], *, secret_fields: Sequence[str] = ()) -> None:
        self._values = dict(values)
        self._secret_fields = frozenset(secret_fields)
        register_secrets(v for k, v in self._values.items() if k in self._secret_fields)

    @property
    def secret_fields(self) -> frozenset[str]:
        """Names of the fields whose values are secret."""
        return self._secret_fields

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def redacted(self) -> dict[str, str]:
        """Return the values with every secret replaced by ``***``: safe to show or log."""
        return {k: (MASK if k in self._secret_fields else v) for k, v in self._values.items()}

    def __repr__(self) -> str:
        return f"Credentials({self.redacted()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Credentials):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))


def _secret_repr(value: Any) -> str:
    return "None" if value is None else repr(MASK)


@attrs.frozen(kw_only=True)
class AuthResult:
    """What a successful ``authenticate`` or ``refresh_token`` returns.

    Attributes:
        access_token: The token sent with broker requests. Never shown in a repr.
        expires_at: When the token stops working (tz-aware UTC), or ``None`` if it does not expire.
        refresh_token: A token to get a new access token with, for brokers that issue one.
        state: Extra values the plugin needs on later calls (user id, device id, API hosts).
            Stored encrypted with the token; never shown in a repr.
    """

    access_token: str = attrs.field(repr=_secret_repr)
    expires_at: dt.datetime | None = attrs.field(default=None, converter=_as_utc_optional, validator=_check_time)
    refresh_token: str | None = attrs.field(default=None, repr=_secret_repr)
    state: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_as_mapping, validator=_check_mapping, repr=lambda _: "{...}"
    )

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.access_token, str):
            raise TypeError(f"AuthResult.access_token must be a string, got {type(self.access_token).__name__}")
        register_secret(self.access_token)
        register_secret(self.refresh_token)

    def expires_within(self, margin: dt.timedelta, *, now: dt.datetime | None = None) -> bool:
        """Whether the token expires within ``margin`` from ``now`` (default: the current time)."""
        if self.expires_at is None:
            return False
        return self.expires_at - margin <= (now or dt.datetime.now(dt.UTC))


# --- accounts and trades ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class Account:
    """One account at a broker, as the broker identifies it."""

    id: str = attrs.field(converter=_as_text, validator=_check_text)
    name: str | None = attrs.field(default=None, converter=_as_text_optional, validator=_check_text)
    currency: str | None = attrs.field(default=None, converter=_as_currency_optional, validator=_check_currency)
    type: str | None = attrs.field(default=None, converter=_as_text_optional, validator=_check_text)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_as_mapping, validator=_check_mapping, repr=False)


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

    broker_trade_id: str = attrs.field(converter=_as_text, validator=_check_text)
    account_id: str = attrs.field(converter=_as_text, validator=_check_text)
    symbol: str = attrs.field(converter=_as_text, validator=_check_text)
    direction: Direction = attrs.field(converter=Direction)
    opened_at: dt.datetime = attrs.field(converter=_as_utc, validator=_check_time)
    closed_at: dt.datetime | None = attrs.field(default=None, converter=_as_utc_optional, validator=_check_time)
    entry_price: Decimal = attrs.field(converter=_as_decimal, validator=_check_decimal)
    exit_price: Decimal | None = attrs.field(default=None, converter=_as_decimal_optional, validator=_check_decimal)
    quantity: Decimal = attrs.field(converter=_as_decimal, validator=_check_decimal)
    realized_pnl: Decimal | None = attrs.field(default=None, converter=_as_decimal_optional, validator=_check_decimal)
    fees: Decimal = attrs.field(default=Decimal(0), converter=_as_decimal, validator=_check_decimal)
    currency: str = attrs.field(converter=_as_currency, validator=_check_currency)
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_as_mapping, validator=[_check_mapping, _check_trade], repr=False, eq=False
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

    account_id: str = attrs.field(converter=_as_text, validator=_check_text)
    broker_trade_id: str = attrs.field(converter=_as_text, validator=_check_text)
    cancelled_at: dt.datetime = attrs.field(converter=_as_utc, validator=_check_time)
    reason: str | None = attrs.field(default=None, converter=_as_text_optional, validator=_check_text)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_as_mapping, validator=_check_mapping, repr=False)


def _as_date_optional(value: dt.date | str | None) -> dt.date | None:
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return value  # type: ignore[return-value]  # refused by _check_date with the field's name
    if isinstance(value, dt.datetime):
        return value.date()
    return value


def _check_date(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (not isinstance(value, dt.date) or isinstance(value, dt.datetime)):
        raise TypeError(f"{_where(instance, attribute)} must be a date (YYYY-MM-DD), got {value!r}")


def _check_positive_decimal(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_decimal(instance, attribute, value)
    if value is not None and value <= 0:
        raise ValueError(f"{_where(instance, attribute)} must be positive, got {value}")


def _check_non_negative_decimal(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_decimal(instance, attribute, value)
    if value is not None and value < 0:
        raise ValueError(f"{_where(instance, attribute)} must not be negative, got {value}")


def _check_nonzero_decimal(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _check_decimal(instance, attribute, value)
    if value == 0:
        raise ValueError(f"{_where(instance, attribute)} must not be zero")


def _as_instrument(value: Instrument | Mapping[str, Any]) -> Instrument:
    if isinstance(value, Mapping):
        return Instrument(**value)
    return value


def _check_instrument(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Instrument):
        raise TypeError(f"{_where(instance, attribute)} must be an Instrument, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class Instrument:
    """What was traded, described well enough to pair executions and to value a round trip.

    Attributes:
        symbol: The broker's symbol (``"AAPL"``, ``"ESZ6"``, ``"EUR_USD"``, ``"BTC/USDT"``).
        asset_class: Stock, future, option, forex, crypto, ...
        currency: The currency prices and P&L are quoted in (ISO code or a crypto ticker).
        multiplier: Contract multiplier (``50`` for ES futures, ``100`` for US equity options,
            ``1`` for stocks). P&L = (exit - entry) x quantity x multiplier.
        instrument_id: The broker's own instrument id where it has one (IB ``conid``, Tradovate
            ``contractId``). It is the pairing key when present.
        underlying: For options and futures options: the underlying symbol.
        expiry: For options and futures: the expiry (or last trade) date.
        strike: For options: the strike price.
        right: For options: put or call.
        exchange: The listing exchange or venue, where known.
    """

    symbol: str = attrs.field(converter=_as_text, validator=_check_text)
    asset_class: AssetClass = attrs.field(default=AssetClass.STOCK, converter=AssetClass)
    currency: str = attrs.field(converter=_as_currency, validator=_check_currency)
    multiplier: Decimal = attrs.field(default=Decimal(1), converter=_as_decimal, validator=_check_positive_decimal)
    instrument_id: str | None = attrs.field(default=None, converter=_as_text_optional, validator=_check_text)
    underlying: str | None = attrs.field(default=None, converter=_as_text_optional, validator=_check_text)
    expiry: dt.date | None = attrs.field(default=None, converter=_as_date_optional, validator=_check_date)
    strike: Decimal | None = attrs.field(default=None, converter=_as_decimal_optional, validator=_check_decimal)
    right: OptionRight | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(OptionRight),
    )
    exchange: str | None = attrs.field(default=None, converter=_as_text_optional, validator=_check_text)

    @property
    def pairing_key(self) -> str:
        """The key executions are paired under: the broker's instrument id, else the normalised symbol."""
        if self.instrument_id is not None:
            return f"id:{self.instrument_id}"
        return f"symbol:{' '.join(self.symbol.upper().split())}"


@attrs.frozen(kw_only=True)
class Execution:
    """One execution (fill) as the broker reports it; the core pairs executions into round trips.

    ``broker_execution_id`` is unique within the broker account and stable across syncs: it is the
    dedupe key (a changed execution with the same id is a correction). The core pairs executions
    per (connection, account, instrument) FIFO by default, across syncs, in time order.

    Attributes:
        broker_execution_id: The broker's id of this execution.
        account_id: The broker account.
        instrument: What was traded.
        side: Buy or sell.
        quantity: How much, always positive (the side gives the sign).
        price: The execution price (``0`` for an option that expired worthless).
        executed_at: When it executed (tz-aware, stored in UTC).
        fees: Commissions and fees of this execution as a positive cost (a rebate is negative).
        fee_currency: The currency of ``fees`` (default: the instrument's currency).
        order_id: The broker's order id, where it has one.
        open_close: The broker's open/close intent, where it reports one (informational: pairing
            follows the position, so a ``C;O`` reversal is paired correctly either way).
        kind: A fill, or an option expiry, assignment or exercise.
        raw: The broker's own record, kept for audit.
    """

    broker_execution_id: str = attrs.field(converter=_as_text, validator=_check_text)
    account_id: str = attrs.field(converter=_as_text, validator=_check_text)
    instrument: Instrument = attrs.field(converter=_as_instrument, validator=_check_instrument)
    side: Side = attrs.field(converter=Side)
    quantity: Decimal = attrs.field(converter=_as_decimal, validator=_check_positive_decimal)
    price: Decimal = attrs.field(converter=_as_decimal, validator=_check_non_negative_decimal)
    executed_at: dt.datetime = attrs.field(converter=_as_utc, validator=_check_time)
    fees: Decimal = attrs.field(default=Decimal(0), converter=_as_decimal, validator=_check_decimal)
    fee_currency: str | None = attrs.field(default=None, converter=_as_currency_optional, validator=_check_currency)
    order_id: str | None = attrs.field(default=None, converter=_as_text_optional, validator=_check_text)
    open_close: OpenClose | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(OpenClose),
    )
    kind: ExecutionKind = attrs.field(default=ExecutionKind.FILL, converter=ExecutionKind)
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_as_mapping, validator=_check_mapping, repr=False, eq=False
    )

    @property
    def signed_quantity(self) -> Decimal:
        """The position change: ``+quantity`` for a buy, ``-quantity`` for a sell."""
        return self.quantity if self.side is Side.BUY else -self.quantity


@attrs.frozen(kw_only=True)
class ExecutionCancellation:
    """The broker cancelled ("busted") an execution it reported: a tombstone for that execution.

    The execution stops counting for pairing; the round trips it was part of are re-paired (a
    round trip that no longer exists leaves a tombstone of its own).

    Attributes:
        account_id: The broker account of the cancelled execution.
        broker_execution_id: The ``broker_execution_id`` being cancelled.
        cancelled_at: When the broker cancelled it (tz-aware, stored in UTC).
        reason: The broker's reason or code, if it gives one.
        raw: The broker's own cancellation record, kept for audit.
    """

    account_id: str = attrs.field(converter=_as_text, validator=_check_text)
    broker_execution_id: str = attrs.field(converter=_as_text, validator=_check_text)
    cancelled_at: dt.datetime = attrs.field(converter=_as_utc, validator=_check_time)
    reason: str | None = attrs.field(default=None, converter=_as_text_optional, validator=_check_text)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_as_mapping, validator=_check_mapping, repr=False)


@attrs.frozen(kw_only=True)
class Position:
    """An open position as the broker reports it (a snapshot), for brokers that pair by themselves.

    A page's ``positions`` replace the account's previous snapshot as a whole (an empty sequence
    means the account is flat). Brokers whose executions the core pairs need not report positions:
    the core derives them from the open lots.

    Attributes:
        account_id: The broker account.
        instrument: What is held.
        quantity: The net position: positive long, negative short (never zero).
        average_price: The average entry price of the open quantity.
        opened_at: When the position was opened, where the broker says.
        raw: The broker's own record.
    """

    account_id: str = attrs.field(converter=_as_text, validator=_check_text)
    instrument: Instrument = attrs.field(converter=_as_instrument, validator=_check_instrument)
    quantity: Decimal = attrs.field(converter=_as_decimal, validator=_check_nonzero_decimal)
    average_price: Decimal = attrs.field(converter=_as_decimal, validator=_check_decimal)
    opened_at: dt.datetime | None = attrs.field(default=None, converter=_as_utc_optional, validator=_check_time)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=_as_mapping, validator=_check_mapping, repr=False)


def _as_records(value: Iterable[Trade | Mapping[str, Any]]) -> tuple[Trade | Mapping[str, Any], ...]:
    return tuple(value)  # typed (not converter=tuple) so mypy checks what callers pass


def _as_cancellations(
    value: Iterable[TradeCancellation | ExecutionCancellation | Mapping[str, Any]],
) -> tuple[TradeCancellation | ExecutionCancellation | Mapping[str, Any], ...]:
    return tuple(value)


def _as_executions(value: Iterable[Execution | Mapping[str, Any]]) -> tuple[Execution | Mapping[str, Any], ...]:
    return tuple(value)


def _as_positions(
    value: Iterable[Position | Mapping[str, Any]] | None,
) -> tuple[Position | Mapping[str, Any], ...] | None:
    return None if value is None else tuple(value)


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
    executions: Sequence[Execution | Mapping[str, Any]] = attrs.field(default=(), converter=_as_executions)
    positions: Sequence[Position | Mapping[str, Any]] | None = attrs.field(default=None, converter=_as_positions)


# --- metadata ---------------------------------------------------------------------------------------


_KEY = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _check_key(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not _KEY.match(value):
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be lower-case letters, digits and '_' "
            f"starting with a letter, got {value!r}"
        )


def _positive(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be a positive number, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{type(instance).__name__}.{attribute.name} must be >= 0, got {value!r}")


@attrs.frozen(kw_only=True)
class CredentialField:
    """One field of a broker's credential schema."""

    name: str = attrs.field(validator=_check_key)
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

    max_requests: int = attrs.field(validator=_positive)
    window_seconds: float = attrs.field(validator=_positive)
    scope: Literal["broker", "account"] = "broker"
    name: str = "default"


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How the core retries a broker's transient failures (exponential backoff with jitter).

    ``Retry-After`` from the broker always wins over the computed delay; a ``Retry-After`` longer
    than ``max_retry_after`` ends the attempt with :class:`~brokersync.BrokerRateLimitError`
    instead of sleeping inside a sync.
    """

    max_retries: int = attrs.field(default=3, validator=_non_negative)
    initial_delay: float = attrs.field(default=1.0, validator=_non_negative)
    max_delay: float = attrs.field(default=30.0, validator=_positive)
    multiplier: float = attrs.field(default=2.0, validator=_positive)
    jitter: float = attrs.field(default=0.2, validator=_non_negative)
    timeout: float = attrs.field(default=60.0, validator=_positive)
    request_timeout: float = attrs.field(default=30.0, validator=_positive)
    max_retry_after: float = attrs.field(default=120.0, validator=_positive)


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


@attrs.frozen(kw_only=True)
class TokenAuth:
    """How the core attaches the connection's access token to a plugin's requests.

    With ``BrokerMetadata.token_auth`` set, ``ctx.http`` adds the current token to every request
    a hook sends (except from ``authenticate`` and ``refresh_token``), so a plugin builds no auth
    header and never holds a stale token. Either way (set or not), when the broker answers 401 in
    a sync the core refreshes the token once (``refresh_token``, else ``authenticate`` from the
    stored credentials), stores it, and resends the request with the new token.

    Attributes:
        header: The header carrying the token (``None``: not in a header).
        prefix: Written before the token in the header (``"Bearer "``).
        query: The query parameter carrying the token instead (e.g. IBKR Flex's ``t``).
    """

    header: str | None = "Authorization"
    prefix: str = "Bearer "
    query: str | None = None

    def __attrs_post_init__(self) -> None:
        if (self.header is None) == (self.query is None):
            raise ValueError("TokenAuth needs exactly one of header= or query=")

    @classmethod
    def bearer(cls) -> TokenAuth:
        """Send ``Authorization: Bearer <token>`` (the default of most REST APIs)."""
        return cls()

    @classmethod
    def in_header(cls, name: str, prefix: str = "") -> TokenAuth:
        """Send the token in header ``name`` (after ``prefix``)."""
        return cls(header=name, prefix=prefix)

    @classmethod
    def in_query(cls, name: str) -> TokenAuth:
        """Send the token in query parameter ``name``."""
        return cls(header=None, prefix="", query=name)


def _as_fields(value: Iterable[CredentialField]) -> tuple[CredentialField, ...]:
    return tuple(value)  # typed converters (not tuple/dict) so mypy checks what plugins pass


def _as_limits(value: Iterable[RateLimit]) -> tuple[RateLimit, ...]:
    return tuple(value)


def _as_environments(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


def _check_environments(instance: BrokerMetadata, attribute: attrs.Attribute[Any], value: Any) -> None:
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
        token_auth: How ``ctx.http`` attaches the access token to requests (``None``: the plugin
            sends it itself; the core still renews a rejected token and swaps it into the
            plugin's headers and query parameters).
    """

    key: str = attrs.field(validator=_check_key)
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
    token_auth: TokenAuth | None = None

    def __attrs_post_init__(self) -> None:
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
