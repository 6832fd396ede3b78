from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import attrs
import brokersync
import pytest
from brokersync import Account, AuthResult, BrokerMetadata, CredentialField, Direction, Trade
from brokersync._converters import describe_error, normalize_trade, strict_converter, wire_converter
from hypothesis import given
from hypothesis import strategies as st

UTC = dt.UTC


def _trade(**overrides):
    values = {
        "broker_trade_id": "T-1",
        "account_id": "ACC",
        "symbol": "ESZ4",
        "direction": "short",
        "opened_at": dt.datetime(2024, 11, 1, 9, 30, tzinfo=ZoneInfo("America/New_York")),
        "closed_at": dt.datetime(2024, 11, 1, 14, 0, tzinfo=UTC),
        "entry_price": Decimal("5800.25"),
        "exit_price": Decimal("5790.00"),
        "quantity": Decimal(2),
        "realized_pnl": Decimal("1025.00"),
        "fees": Decimal("4.12"),
        "currency": "usd",
    }
    values.update(overrides)
    return Trade(**values)


def test_trade_normalizes_times_to_utc_and_keeps_money_exact():
    trade = _trade()
    assert trade.opened_at == dt.datetime(2024, 11, 1, 13, 30, tzinfo=UTC)
    assert trade.opened_at.tzinfo is UTC
    assert trade.direction is Direction.SHORT
    assert trade.currency == "USD"
    assert trade.entry_price + trade.fees == Decimal("5804.37")
    assert trade.is_closed


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"entry_price": 1.1}, TypeError, "Trade.entry_price must be a Decimal, got float 1.1"),
        ({"fees": 0.1}, TypeError, "pass Decimal('0.1')"),
        ({"opened_at": dt.datetime(2024, 1, 1, 9, 30)}, ValueError, "Trade.opened_at is a naive datetime"),
        ({"closed_at": dt.datetime(2024, 1, 1)}, ValueError, "Trade.closed_at is a naive datetime"),
        ({"quantity": Decimal(-1)}, ValueError, "Trade.quantity must be positive"),
        ({"quantity": Decimal(0)}, ValueError, "Trade.quantity must be positive"),
        ({"broker_trade_id": "  "}, ValueError, "Trade.broker_trade_id must not be empty"),
        ({"currency": "US Dollar"}, ValueError, "Trade.currency must be a currency code"),
        ({"direction": "sideways"}, ValueError, "'sideways' is not a valid Direction"),
        ({"entry_price": Decimal("NaN")}, ValueError, "Trade.entry_price must be a finite number"),
        (
            {"closed_at": dt.datetime(2024, 11, 1, 13, 0, tzinfo=UTC)},
            ValueError,
            "closed_at (2024-11-01T13:00:00+00:00) is before opened_at",
        ),
    ],
    ids=[
        "float-price",
        "float-fees",
        "naive-open",
        "naive-close",
        "negative-qty",
        "zero-qty",
        "blank-id",
        "bad-currency",
        "bad-direction",
        "nan-price",
        "closed-before-opened",
    ],
)
def test_trade_rejects_bad_values_with_a_message_naming_the_field(overrides, error, fragment):
    with pytest.raises(error) as excinfo:
        _trade(**overrides)
    assert fragment in str(excinfo.value)


def test_models_are_frozen_and_change_through_evolve():
    trade = _trade()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        trade.symbol = "NQ"  # type: ignore[misc]
    moved = attrs.evolve(trade, exit_price=Decimal("5780"))
    assert moved.exit_price == Decimal("5780") and trade.exit_price == Decimal("5790.00")


def test_raw_record_is_kept_but_not_part_of_equality():
    assert _trade(raw={"id": 1}) == _trade(raw={"id": 2})
    assert _trade(raw={"id": 1}).raw == {"id": 1}


def test_auth_result_hides_tokens_and_state_in_repr():
    auth = AuthResult(
        access_token="tok-abcdef-123456",
        refresh_token="ref-abcdef-654321",
        expires_at=dt.datetime(2030, 1, 1, tzinfo=UTC),
        state={"userId": 42},
    )
    text = repr(auth)
    assert "tok-abcdef-123456" not in text and "ref-abcdef-654321" not in text and "42" not in text
    assert "'***'" in text


def test_auth_result_expiry_is_timezone_aware():
    with pytest.raises(ValueError, match="AuthResult.expires_at is a naive datetime"):
        AuthResult(access_token="x" * 8, expires_at=dt.datetime(2030, 1, 1))
    auth = AuthResult(access_token="x" * 8, expires_at=dt.datetime(2030, 1, 1, 12, tzinfo=UTC))
    now = dt.datetime(2030, 1, 1, 11, 50, tzinfo=UTC)
    assert auth.expires_within(dt.timedelta(minutes=15), now=now)
    assert not auth.expires_within(dt.timedelta(minutes=5), now=now)
    assert not AuthResult(access_token="static-token").expires_within(dt.timedelta(days=999))


def _metadata(**overrides):
    values = {
        "key": "tradovate_like",
        "name": "Tradovate-like",
        "auth_type": "password",
        "credential_fields": [
            CredentialField(name="username"),
            CredentialField(name="password", secret=True),
            CredentialField(name="device_id", required=False),
        ],
        "environments": {"live": "https://live.example.invalid/v1", "demo": "https://demo.example.invalid/v1"},
        "default_environment": "demo",
    }
    values.update(overrides)
    return BrokerMetadata(**values)


def test_credentials_are_validated_against_the_schema_and_secrets_masked():
    meta = _metadata()
    creds = meta.validate_credentials({"username": "trader1", "password": "pa55-w0rd!"})
    assert creds["password"] == "pa55-w0rd!"
    assert creds.secret_fields == {"password"}
    assert "pa55-w0rd!" not in repr(creds) and "trader1" in repr(creds)
    assert creds.redacted() == {"username": "trader1", "password": "***"}


def test_invalid_credentials_name_every_problem_but_no_value():
    meta = _metadata()
    with pytest.raises(brokersync.ConfigurationError) as excinfo:
        meta.validate_credentials({"user": "trader1", "pasword": "hunter2-secret"})
    message = str(excinfo.value)
    assert "missing required field 'username'" in message
    assert "missing required field 'password'" in message
    assert "unknown field(s) pasword, user" in message
    assert "hunter2-secret" not in message


def test_environment_resolution():
    meta = _metadata()
    assert meta.resolve_environment(None) == "demo"
    assert meta.resolve_environment("live") == "live"
    with pytest.raises(brokersync.ConfigurationError, match="no environment 'paper'; choose one of demo, live"):
        meta.resolve_environment("paper")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"key": "Bad Key"}, "BrokerMetadata.key must be lower-case"),
        ({"environments": {}}, "must name at least one environment"),
        ({"environments": {"live": "ftp://x"}}, "must be an http(s) base URL"),
        ({"default_environment": "paper"}, "default_environment 'paper' is not one of"),
        ({"credential_fields": [CredentialField(name="a"), CredentialField(name="a")]}, "repeats a"),
        ({"auth_type": "carrier_pigeon"}, "is not a valid AuthType"),
    ],
    ids=["key", "no-env", "env-url", "default-env", "dup-field", "auth-type"],
)
def test_invalid_metadata_is_refused(overrides, fragment):
    with pytest.raises(ValueError) as excinfo:
        _metadata(**overrides)
    assert fragment in str(excinfo.value)


def test_rate_limit_and_retry_policy_validate_numbers():
    with pytest.raises(ValueError, match="RateLimit.max_requests must be a positive number"):
        brokersync.RateLimit(max_requests=0, window_seconds=60)
    with pytest.raises(ValueError, match="RetryPolicy.max_retries must be >= 0"):
        brokersync.RetryPolicy(max_retries=-1)


def test_wire_records_normalize_leniently_but_refuse_floats():
    record = {
        "broker_trade_id": 123,
        "symbol": "EUR_USD",
        "direction": "long",
        "opened_at": "2024-03-01T10:00:00Z",
        "closed_at": "2024-03-01T11:00:00.123456+01:00",
        "entry_price": "1.08450",
        "exit_price": "1.08500",
        "quantity": 10000,
        "realized_pnl": "5.00",
        "currency": "USD",
        "extra_broker_field": "ignored",
    }
    trade = normalize_trade(record, account_id="001-001")
    assert trade.broker_trade_id == "123"
    assert trade.account_id == "001-001"
    assert trade.closed_at == dt.datetime(2024, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert trade.entry_price == Decimal("1.08450")
    assert trade.raw["extra_broker_field"] == "ignored"

    with pytest.raises(brokersync.RecordValidationError) as excinfo:
        normalize_trade({**record, "entry_price": 1.0845}, account_id="001-001")
    assert "invalid trade record 123" in str(excinfo.value)
    assert "$.entry_price" in str(excinfo.value)
    assert excinfo.value.broker_trade_id == "123"


def test_wire_record_with_naive_time_or_other_account_is_refused():
    base = {
        "broker_trade_id": "x1",
        "symbol": "AAPL",
        "direction": "long",
        "opened_at": "2024-03-01T10:00:00",
        "entry_price": "1",
        "quantity": "1",
        "currency": "USD",
    }
    with pytest.raises(brokersync.RecordValidationError, match="naive datetime"):
        normalize_trade(base, account_id="A")
    with pytest.raises(brokersync.RecordValidationError, match="belongs to account 'B'"):
        normalize_trade({**base, "opened_at": "2024-03-01T10:00:00Z", "account_id": "B"}, account_id="A")


def test_strict_converter_refuses_unknown_metadata_keys():
    data = strict_converter().unstructure(_metadata())
    assert strict_converter().structure(data, BrokerMetadata) == _metadata()
    data["colour"] = "blue"
    with pytest.raises(Exception) as excinfo:
        strict_converter().structure(data, BrokerMetadata)
    assert "colour" in describe_error(excinfo.value)


money = st.decimals(allow_nan=False, allow_infinity=False, min_value=0, max_value=10**12, places=8)
positive = st.decimals(allow_nan=False, allow_infinity=False, min_value=Decimal("0.00000001"), max_value=10**9)
aware = st.datetimes(
    min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.timezones()
).filter(lambda d: d.utcoffset() is not None)


@given(entry=money, exit_=money, qty=positive, opened=aware, pnl=money)
def test_trade_round_trips_through_the_wire_converter(entry, exit_, qty, opened, pnl):
    trade = Trade(
        broker_trade_id="id",
        account_id="acc",
        symbol="SYM",
        direction=Direction.LONG,
        opened_at=opened,
        closed_at=opened + dt.timedelta(minutes=5),
        entry_price=entry,
        exit_price=exit_,
        quantity=qty,
        realized_pnl=pnl,
        currency="USD",
    )
    data = wire_converter().unstructure(trade)
    assert isinstance(data["entry_price"], str)
    again = wire_converter().structure(data, Trade)
    assert again == trade
    assert again.entry_price == entry and again.opened_at == opened.astimezone(UTC)


def test_account_from_mapping():
    account = wire_converter().structure({"id": 7, "currency": "eur", "unknown": 1}, Account)
    assert account == Account(id="7", currency="EUR")
