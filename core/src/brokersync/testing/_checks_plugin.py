"""Checks of the plugin as a package: metadata, discovery, credential schema, authentication."""

from __future__ import annotations

import importlib.metadata
import re
from urllib.parse import urlsplit

from brokersync._registry import ENTRY_POINT_GROUP, BrokerRegistry
from brokersync.errors import BrokerAuthError
from brokersync.models import AuthResult, AuthType, BrokerMetadata
from brokersync.testing._base import SuiteBase
from brokersync.testing._harness import Scenario

__all__ = ["PluginChecks"]

# RFC 2606 names for examples: a template or tutorial placeholder that must not ship.
_PLACEHOLDER_HOSTS = ("example", "example.com", "example.net", "example.org")


def _placeholder(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host == name or host.endswith("." + name) for name in _PLACEHOLDER_HOSTS)


_SECRET_NAME = re.compile(r"pass|secret|token|private|pin\b|^sec$|_sec$|api_?key$")


class PluginChecks(SuiteBase):
    """Checks of the plugin as a package: metadata, discovery, credential schema, authentication."""

    def test_metadata_complete(self) -> None:
        """Rule ``metadata-complete``."""
        rule = "metadata-complete"
        meta = self._registry(rule).metadata(self.broker_key)
        problems = []
        if not meta.description.strip():
            problems.append("description is empty (it is shown in `brokersync brokers`)")
        if not meta.credential_fields:
            problems.append("credential_fields is empty")
        if not meta.rate_limits:
            problems.append("rate_limits is empty: declare the broker's documented request limits")
        if not meta.docs_url or not meta.docs_url.startswith(("http://", "https://")):
            problems.append("docs_url is missing: link the broker's API documentation")
        for name, url in meta.environments.items():
            host = urlsplit(url).hostname or ""
            local = host in ("localhost", "127.0.0.1") or host.endswith((".test", ".localhost"))
            if not url.startswith("https://") and not local:
                problems.append(f"environment {name!r} uses plain http: {url}")
            if _placeholder(host):
                problems.append(
                    f"environment {name!r} still has the placeholder URL {url}: set the broker's real API URL"
                )
        if meta.docs_url and _placeholder(urlsplit(meta.docs_url).hostname or ""):
            problems.append(f"docs_url is the placeholder {meta.docs_url}: link the broker's real API documentation")
        if problems:
            raise self._fail(rule, "; ".join(problems), _metadata_summary(meta))

    def test_entry_point(self) -> None:
        """Rule ``entry-point``."""
        rule = "entry-point"
        points = [ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.name == self.broker_key]
        if not points:
            raise self._fail(
                rule,
                f"no entry point named {self.broker_key!r} in group {ENTRY_POINT_GROUP!r}; declare it in "
                f"pyproject.toml under [project.entry-points.{ENTRY_POINT_GROUP!r}] and install the package",
            )
        if len(points) > 1:
            raise self._fail(rule, f"{len(points)} installed entry points claim {self.broker_key!r}: {points}")
        registry = BrokerRegistry(allow=[self.broker_key])
        failure = next((f for f in registry.failures() if f.key == self.broker_key), None)
        if failure is not None:
            raise self._fail(rule, f"the entry point {points[0].value} fails to load: {failure.error}")
        if self.plugin is not None:
            loaded = points[0].load()
            if loaded is not self.plugin:
                raise self._fail(
                    rule, f"the entry point {points[0].value} loads {loaded!r}, but the suite tests {self.plugin!r}"
                )

    def test_secret_fields(self) -> None:
        """Rule ``secret-fields``."""
        rule = "secret-fields"
        meta = self._registry(rule).metadata(self.broker_key)
        for spec in meta.credential_fields:
            if _SECRET_NAME.search(spec.name.lower()) and not spec.secret and not spec.name.endswith("_id"):
                raise self._fail(
                    rule, f"credential field {spec.name!r} looks secret but its secret flag is not set", spec
                )
        if not meta.secret_fields:
            raise self._fail(rule, "no credential field is marked as a secret field; every auth style has a secret")

    # -- authentication --------------------------------------------------------------------------

    def test_auth_token(self) -> None:
        """Rule ``auth-token``."""
        rule = "auth-token"

        async def body(scenario: Scenario) -> tuple[AuthResult, BrokerMetadata]:
            return await scenario.authenticate(self.valid_credentials, rule), scenario.broker.metadata

        auth, meta = self._run(rule, body)
        if not auth.access_token:
            raise self._fail(rule, "authenticate() returned an empty access_token", auth)
        if auth.expires_at is None:
            if meta.auth_type in (AuthType.PASSWORD, AuthType.OAUTH):
                raise self._fail(
                    rule, f"auth type {meta.auth_type.value!r} issues expiring tokens, but expires_at is None", auth
                )
        elif auth.expires_at <= self.clock():
            raise self._fail(rule, f"the new token already expired at {auth.expires_at.isoformat()}", auth)

    def test_refresh_token(self) -> None:
        """Rule ``refresh-token``."""
        rule = "refresh-token"

        async def body(scenario: Scenario) -> None:
            declared = scenario.broker.metadata.capabilities.refresh_token
            implemented = scenario.broker.implements("refresh_token")
            if declared and not implemented:
                raise self._fail(rule, "capabilities.refresh_token is True but the refresh_token hook is missing")
            if implemented and not declared:
                raise self._fail(rule, "refresh_token is implemented but capabilities.refresh_token is False")
            if not implemented:
                return
            auth = await scenario.authenticate(self.valid_credentials, rule)
            try:
                renewed = await scenario.broker.refresh_token(self.valid_credentials, auth)
            except Exception as exc:
                raise self._fail(rule, f"refresh_token() failed: {type(exc).__name__}: {exc}") from exc
            if renewed is None or not renewed.access_token:
                raise self._fail(rule, "refresh_token() of a fresh token returned no token", renewed)
            if auth.expires_at and renewed.expires_at and renewed.expires_at < auth.expires_at:
                raise self._fail(rule, "the renewed token expires before the old one", renewed)

        self._run(rule, body)

    def test_bad_credentials(self) -> None:
        """Rule ``bad-credentials``."""
        rule = "bad-credentials"

        async def body(scenario: Scenario) -> None:
            secrets = [v for k, v in self.invalid_credentials.items() if k in scenario.broker.metadata.secret_fields]
            try:
                result = await scenario.broker.authenticate(self.invalid_credentials)
            except BrokerAuthError as exc:
                for text in (str(exc), repr(exc)):
                    if any(len(s) >= 4 and s in text for s in secrets):
                        raise self._fail(rule, "the BrokerAuthError message contains a secret credential") from None
                return
            except Exception as exc:
                raise self._fail(
                    rule, f"rejected credentials raised {type(exc).__name__}: {exc}; raise BrokerAuthError"
                ) from exc
            raise self._fail(rule, "authenticate() accepted the invalid credentials", result)

        self._run(rule, body)


def _metadata_summary(meta: BrokerMetadata) -> str:
    return f"BrokerMetadata(key={meta.key!r}, name={meta.name!r}, docs_url={meta.docs_url!r})"
