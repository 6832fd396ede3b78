"""The redactor stays bounded in a long-running worker, learns secret names from plugins, and
leaves ordinary words alone."""

from __future__ import annotations

import datetime as dt

from brokersync import AuthResult, BrokerMetadata, CredentialField
from brokersync._redact import MAX_SECRETS, redact, secret_count


def _metadata(**extra: object) -> BrokerMetadata:
    return BrokerMetadata(
        key="redact_demo",
        name="Redact demo",
        auth_type="token",
        credential_fields=[CredentialField(name="username"), CredentialField(name="pin_code", secret=True)],
        environments={"live": "https://redact.test"},
        **extra,
    )


def test_a_worker_syncing_10000_connections_keeps_the_redactor_bounded() -> None:
    metadata = _metadata()
    expires = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    for n in range(10_000):
        # What one sync of one connection registers: its credentials and its token.
        metadata.validate_credentials({"username": f"user{n}", "pin_code": f"pin-{n:08d}-secret"})
        AuthResult(access_token=f"access-{n:08d}-token", refresh_token=f"refresh-{n:08d}", expires_at=expires)
        assert secret_count() <= MAX_SECRETS
    # The most recent syncs' secrets (those in flight) are still masked.
    assert redact("login pin-00009999-secret failed") == "login *** failed"
    assert "access-00009999-token" not in redact("sent access-00009999-token")


def test_messages_read_naturally() -> None:
    assert redact("POST https://x.test/auth/token answered 401") == "POST https://x.test/auth/token answered 401"
    assert redact("the token expired; refreshing the token now") == "the token expired; refreshing the token now"
    assert redact("token tok-9f8e7d6c5b4a was refused") == "token *** was refused"


def test_secret_names_come_from_the_plugins_metadata() -> None:
    text = 'GET https://x/api?t=123456789012&q=55 answered {"mdAccessToken": "md-xyz-123"} pin_code=7788'
    before = redact(text)
    assert "123456789012" in before and "md-xyz-123" in before  # not a generic secret name
    _metadata(secret_response_fields=["t", "mdAccessToken"])
    after = redact(text)
    assert "123456789012" not in after
    assert "md-xyz-123" not in after
    assert "7788" not in after  # a secret credential field of the schema
    assert "q=55" in after
