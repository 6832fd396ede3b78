"""The execution side of the data model: instruments, executions (fills), busts and position snapshots.

Most brokers report executions, not round trips; a plugin yields :class:`Execution` records in
``TradePage.executions`` and the core pairs them into round-trip trades (FIFO by default). All
re-exported from :mod:`brokersync.models` and the package root.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

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
    check_mapping,
    check_text,
    check_time,
    where,
)

__all__ = [
    "AssetClass",
    "Direction",
    "Execution",
    "ExecutionCancellation",
    "ExecutionKind",
    "Instrument",
    "OpenClose",
    "OptionRight",
    "Position",
    "Reports",
    "Side",
    "as_executions",
    "as_positions",
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
        raise TypeError(f"{where(instance, attribute)} must be a date (YYYY-MM-DD), got {value!r}")


def _check_positive_decimal(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_decimal(instance, attribute, value)
    if value is not None and value <= 0:
        raise ValueError(f"{where(instance, attribute)} must be positive, got {value}")


def _check_non_negative_decimal(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_decimal(instance, attribute, value)
    if value is not None and value < 0:
        raise ValueError(f"{where(instance, attribute)} must not be negative, got {value}")


def _check_nonzero_decimal(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_decimal(instance, attribute, value)
    if value == 0:
        raise ValueError(f"{where(instance, attribute)} must not be zero")


def _as_instrument(value: Instrument | Mapping[str, Any]) -> Instrument:
    if isinstance(value, Mapping):
        return Instrument(**value)
    return value


def _check_instrument(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, Instrument):
        raise TypeError(f"{where(instance, attribute)} must be an Instrument, got {type(value).__name__}")


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

    symbol: str = attrs.field(converter=as_text, validator=check_text)
    asset_class: AssetClass = attrs.field(default=AssetClass.STOCK, converter=AssetClass)
    currency: str = attrs.field(converter=as_currency, validator=check_currency)
    multiplier: Decimal = attrs.field(default=Decimal(1), converter=as_decimal, validator=_check_positive_decimal)
    instrument_id: str | None = attrs.field(default=None, converter=as_text_optional, validator=check_text)
    underlying: str | None = attrs.field(default=None, converter=as_text_optional, validator=check_text)
    expiry: dt.date | None = attrs.field(default=None, converter=_as_date_optional, validator=_check_date)
    strike: Decimal | None = attrs.field(default=None, converter=as_decimal_optional, validator=check_decimal)
    right: OptionRight | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(OptionRight),
    )
    exchange: str | None = attrs.field(default=None, converter=as_text_optional, validator=check_text)

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
        broker_realized_pnl: The broker's own realized P&L for what this execution closed, where it
            reports one (IB's ``fifoPnlRealized``): in the instrument's currency, **net of fees**
            (the closing execution's fees and the share of the opening executions' fees, as IB
            reports it). The core compares it with the round trips it pairs for this execution
            (``realized_pnl - fees``, summed) and reports a disagreement as a sync warning
            (``brokersync.pnl_mismatch``, ADR 0013); it changes no stored value and is not part
            of what makes a correction. ``None`` (the default): nothing to check. A broker that
            reports its P&L gross, or in another currency, leaves it ``None``.
    """

    broker_execution_id: str = attrs.field(converter=as_text, validator=check_text)
    account_id: str = attrs.field(converter=as_text, validator=check_text)
    instrument: Instrument = attrs.field(converter=_as_instrument, validator=_check_instrument)
    side: Side = attrs.field(converter=Side)
    quantity: Decimal = attrs.field(converter=as_decimal, validator=_check_positive_decimal)
    price: Decimal = attrs.field(converter=as_decimal, validator=_check_non_negative_decimal)
    executed_at: dt.datetime = attrs.field(converter=as_utc, validator=check_time)
    fees: Decimal = attrs.field(default=Decimal(0), converter=as_decimal, validator=check_decimal)
    fee_currency: str | None = attrs.field(default=None, converter=as_currency_optional, validator=check_currency)
    order_id: str | None = attrs.field(default=None, converter=as_text_optional, validator=check_text)
    open_close: OpenClose | None = attrs.field(
        default=None,
        converter=attrs.converters.optional(OpenClose),
    )
    kind: ExecutionKind = attrs.field(default=ExecutionKind.FILL, converter=ExecutionKind)
    raw: Mapping[str, Any] = attrs.field(
        factory=dict, converter=as_mapping, validator=check_mapping, repr=False, eq=False
    )
    broker_realized_pnl: Decimal | None = attrs.field(
        default=None, converter=as_decimal_optional, validator=check_decimal
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

    account_id: str = attrs.field(converter=as_text, validator=check_text)
    broker_execution_id: str = attrs.field(converter=as_text, validator=check_text)
    cancelled_at: dt.datetime = attrs.field(converter=as_utc, validator=check_time)
    reason: str | None = attrs.field(default=None, converter=as_text_optional, validator=check_text)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=as_mapping, validator=check_mapping, repr=False)


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

    account_id: str = attrs.field(converter=as_text, validator=check_text)
    instrument: Instrument = attrs.field(converter=_as_instrument, validator=_check_instrument)
    quantity: Decimal = attrs.field(converter=as_decimal, validator=_check_nonzero_decimal)
    average_price: Decimal = attrs.field(converter=as_decimal, validator=check_decimal)
    opened_at: dt.datetime | None = attrs.field(default=None, converter=as_utc_optional, validator=check_time)
    raw: Mapping[str, Any] = attrs.field(factory=dict, converter=as_mapping, validator=check_mapping, repr=False)


def as_executions(value: Iterable[Execution | Mapping[str, Any]]) -> tuple[Execution | Mapping[str, Any], ...]:
    return tuple(value)


def as_positions(
    value: Iterable[Position | Mapping[str, Any]] | None,
) -> tuple[Position | Mapping[str, Any], ...] | None:
    return None if value is None else tuple(value)
