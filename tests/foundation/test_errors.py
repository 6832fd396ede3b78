from __future__ import annotations

import brokersync
import httpx
import pytest
from brokersync import ErrorType, Severity, classify_error
from brokersync._redact import redact, redact_value, register_secret


def _httpx_timeout() -> Exception:
    return httpx.ReadTimeout("timed out", request=httpx.Request("GET", "https://x.invalid"))


def _httpx_connect() -> Exception:
    return httpx.ConnectError("refused", request=httpx.Request("GET", "https://x.invalid"))


class PluginSpecificError(Exception):
    """An exception type brokersync never heard of."""


@pytest.mark.parametrize(
    ("exc", "kind", "retryable", "severity"),
    [
        (brokersync.BrokerAuthError("bad login"), ErrorType.AUTH, False, Severity.ERROR),
        (brokersync.BrokerRateLimitError("slow", retry_after=30), ErrorType.RATE_LIMIT, True, Severity.WARNING),
        (brokersync.BrokerNetworkError("down"), ErrorType.NETWORK, True, Severity.WARNING),
        (brokersync.BrokerTimeoutError("slow"), ErrorType.TIMEOUT, True, Severity.WARNING),
        (brokersync.BrokerServerError("503", status_code=503), ErrorType.API, True, Severity.ERROR),
        (brokersync.BrokerApiError("400", status_code=400), ErrorType.API, False, Severity.ERROR),
        (brokersync.BrokerUnavailableError("circuit open", retry_after=5), ErrorType.NETWORK, True, Severity.WARNING),
        (brokersync.ConfigurationError("bad config"), ErrorType.VALIDATION, False, Severity.ERROR),
        (brokersync.RecordValidationError("bad record"), ErrorType.VALIDATION, False, Severity.ERROR),
        (brokersync.NeedsReauthError("reconnect"), ErrorType.AUTH, False, Severity.ERROR),
        (_httpx_timeout(), ErrorType.TIMEOUT, True, Severity.WARNING),
        (_httpx_connect(), ErrorType.NETWORK, True, Severity.WARNING),
        (TimeoutError(), ErrorType.TIMEOUT, True, Severity.WARNING),
        (ConnectionResetError("reset"), ErrorType.NETWORK, True, Severity.WARNING),
        (ValueError("bad value"), ErrorType.VALIDATION, False, Severity.ERROR),
        (PluginSpecificError("weird"), ErrorType.UNKNOWN, False, Severity.CRITICAL),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else str(v),
)
def test_classify_error(exc, kind, retryable, severity):
    result = classify_error(exc)
    assert (result.type, result.retryable, result.severity) == (kind, retryable, severity)
    assert result.user_message
    assert result.technical_details["exception"].endswith(type(exc).__qualname__)


def test_database_and_concurrency_failures_get_actionable_messages():
    store = classify_error(brokersync.StoreError("writing trades of connection c-1 failed: database is locked"))
    assert store.retryable
    assert store.user_message.startswith("The database failed; the sync can be retried.")
    assert "database is locked" in store.user_message
    busy = classify_error(brokersync.SyncInProgressError("connection c-1 is being synced by host-2"))
    assert busy.retryable and "Another sync of this connection is running" in busy.user_message
    vault = classify_error(brokersync.VaultError("the credentials of connection c-1: unknown key id k2"))
    assert not vault.retryable and "could not be decrypted" in vault.user_message


def test_rate_limit_classification_carries_retry_after():
    result = classify_error(brokersync.BrokerRateLimitError("slow down", retry_after=42, broker="tradovate"))
    assert result.retry_after == 42.0
    assert "retry in 42 s" in result.user_message
    assert result.technical_details["broker"] == "tradovate"


def test_classification_never_leaks_a_registered_secret():
    register_secret("Sup3r-S3cret-Passw0rd")
    exc = PluginSpecificError("login failed for bob with password Sup3r-S3cret-Passw0rd")
    exc.__cause__ = RuntimeError("body: {'password': 'Sup3r-S3cret-Passw0rd'}")
    result = classify_error(exc)
    assert "Sup3r-S3cret-Passw0rd" not in repr(result)
    assert "***" in result.technical_details["message"]


def test_brokersync_errors_redact_their_own_message():
    register_secret("tok-9f8e7d6c5b4a")
    exc = brokersync.BrokerApiError("GET /trades?token=tok-9f8e7d6c5b4a failed")
    assert "tok-9f8e7d6c5b4a" not in str(exc)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("GET https://x/api?token=123456789012&q=55 failed", "123456789012"),
        ('{"name": "bob", "password": "hunter2-xyz"}', "hunter2-xyz"),
        ('{"accessToken": "abc.def.ghi-123"}', "abc.def.ghi-123"),
        ("https://x/api?api_key=KEY123456&x=1", "KEY123456"),
    ],
    ids=["bearer", "query-token", "json-password", "json-token", "query-api-key"],
)
def test_redact_masks_secret_shapes(text, hidden):
    assert hidden not in redact(text)


def test_redact_value_masks_secret_keys_recursively():
    value = {"headers": {"Authorization": "Bearer abcdefghijk"}, "params": [{"token": "zzz"}], "n": 1}
    assert redact_value(value) == {"headers": {"Authorization": "***"}, "params": [{"token": "***"}], "n": 1}


def test_error_tree_groups_by_what_happens_next():
    assert issubclass(brokersync.BrokerTimeoutError, brokersync.BrokerNetworkError)
    assert issubclass(brokersync.BrokerServerError, brokersync.BrokerApiError)
    for cls in (
        brokersync.BrokerAuthError,
        brokersync.ConfigurationError,
        brokersync.PluginError,
        brokersync.SyncError,
    ):
        assert issubclass(cls, brokersync.BrokerSyncError)
    assert not brokersync.BrokerAuthError.retryable and brokersync.BrokerServerError.retryable
