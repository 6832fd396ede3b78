"""Trade fingerprints: a stable hash of the normalized fields, so a resend is skipped and a change updated.

The fingerprint hashes the normalized fields only: a broker that reshuffles its raw JSON, or
writes a number with another scale ("1.5" / "1.50"), does not cause an update.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

from brokersync._store._types import utc_text
from brokersync.models import Trade

__all__ = ["canonical_decimal", "fingerprint", "fingerprint_fields"]

_PLAIN_LIMIT = 1000  # beyond 10**±1000 a canonical decimal is written with an exponent


def canonical_decimal(text: str) -> str:
    """The text a decimal's fingerprint uses: equal numbers give equal text.

    ``text`` is ``str(value)`` of a finite Decimal. The result is the plain form without trailing
    fractional zeros or exponent ("1.50" -> "1.5", "1E+2" -> "100", "-0.00" -> "0"), so a broker
    that changes only a value's scale does not change the trade's fingerprint. Values beyond
    10**±1000 keep a (canonical) exponent instead of being written out in full.
    """
    if "E" not in text and len(text) <= _PLAIN_LIMIT:
        # str() writes this value without an exponent, so its magnitude is within the limit
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    sign, digit_tuple, exponent = Decimal(text).as_tuple()
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "0"
    stripped = digits.rstrip("0")
    assert isinstance(exponent, int)  # a finite Decimal (Trade refuses NaN and infinities)
    exponent += len(digits) - len(stripped)
    point = len(stripped) + exponent  # digits before the decimal point
    if exponent >= 0:
        body = stripped + "0" * exponent if exponent <= _PLAIN_LIMIT else f"{stripped}E+{exponent}"
    elif point > 0:
        body = f"{stripped[:point]}.{stripped[point:]}"
    elif point >= -_PLAIN_LIMIT:
        body = "0." + "0" * -point + stripped
    else:
        body = f"{stripped}E{exponent}"
    return "-" + body if sign else body


def _decimal_key(text: str | None) -> str:
    return "None" if text is None else canonical_decimal(text)


def fingerprint_fields(
    symbol: str,
    direction: str,
    opened: str,
    closed: str,
    entry: str,
    exit_: str | None,
    quantity: str,
    pnl: str | None,
    fees: str,
    currency: str,
) -> str:
    """The fingerprint from the stored texts (times as ``utc_text``, decimals as ``str``).

    ``closed`` is "" for an open trade. The 0003 migration recomputes stored fingerprints with it.
    """
    text = (
        f"{symbol}\x1f{direction}\x1f{opened}\x1f{closed}\x1f{canonical_decimal(entry)}\x1f{_decimal_key(exit_)}\x1f"
        f"{canonical_decimal(quantity)}\x1f{_decimal_key(pnl)}\x1f{canonical_decimal(fees)}\x1f{currency}"
    )
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fingerprint(trade: Trade) -> str:
    """A stable hash of the trade's normalized fields (``raw`` excluded; numerically equal decimals
    hash alike, so "1.5" and "1.50" are the same trade)."""
    return fingerprint_fields(
        trade.symbol,
        trade.direction.value,
        utc_text(trade.opened_at),
        "" if trade.closed_at is None else utc_text(trade.closed_at),
        str(trade.entry_price),
        None if trade.exit_price is None else str(trade.exit_price),
        str(trade.quantity),
        None if trade.realized_pnl is None else str(trade.realized_pnl),
        str(trade.fees),
        trade.currency,
    )
