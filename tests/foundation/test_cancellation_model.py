"""TradeCancellation and TradePage.cancellations: validated like trades, one by one."""

from __future__ import annotations

import datetime as dt

import pytest
from brokersync import RecordValidationError, TradeCancellation, TradePage
from brokersync._converters import normalize_cancellation


def test_a_cancellation_needs_an_aware_time_and_a_trade_id() -> None:
    eastern = dt.timezone(dt.timedelta(hours=-5))
    at = dt.datetime(2025, 1, 2, 9, tzinfo=eastern)
    ok = TradeCancellation(account_id="A", broker_trade_id=" T1 ", cancelled_at=at)
    assert ok.broker_trade_id == "T1" and ok.cancelled_at == dt.datetime(2025, 1, 2, 14, tzinfo=dt.UTC)
    assert ok.cancelled_at.tzinfo is dt.UTC and ok.reason is None
    with pytest.raises(ValueError, match=r"TradeCancellation.cancelled_at is a naive datetime"):
        TradeCancellation(account_id="A", broker_trade_id="T1", cancelled_at=dt.datetime(2025, 1, 2))
    with pytest.raises(ValueError, match=r"TradeCancellation.broker_trade_id must not be empty"):
        TradeCancellation(account_id="A", broker_trade_id="", cancelled_at=dt.datetime(2025, 1, 2, tzinfo=dt.UTC))


def test_trade_page_takes_cancellations_as_objects_or_mappings() -> None:
    page = TradePage(records=[], cancellations=[{"broker_trade_id": "T1", "cancelled_at": "2025-01-02T09:00:00Z"}])
    assert TradePage(records=[]).cancellations == ()
    [cancellation] = [normalize_cancellation(c, account_id="A") for c in page.cancellations]
    assert cancellation.account_id == "A"  # the page's account by default
    assert cancellation.raw == {"broker_trade_id": "T1", "cancelled_at": "2025-01-02T09:00:00Z"}


def test_an_invalid_cancellation_names_the_trade_and_the_field() -> None:
    with pytest.raises(RecordValidationError, match=r"invalid cancellation of trade 'T9'.*naive") as caught:
        normalize_cancellation({"broker_trade_id": "T9", "cancelled_at": "2025-01-02T09:00:00"}, account_id="A")
    assert caught.value.broker_trade_id == "T9"
    with pytest.raises(RecordValidationError, match="belongs to account 'B'"):
        normalize_cancellation(
            {"broker_trade_id": "T9", "account_id": "B", "cancelled_at": "2025-01-02T09:00:00Z"}, account_id="A"
        )
