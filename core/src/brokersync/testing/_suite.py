"""The conformance suite: a base class whose test methods check one rule each."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.metadata
import re
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from brokersync._registry import ENTRY_POINT_GROUP, BrokerRegistry
from brokersync.errors import BrokerAuthError, BrokerServerError, BrokerUnavailableError, PluginError
from brokersync.models import AuthResult, AuthType, BrokerMetadata, CursorKind, Trade
from brokersync.testing._harness import Fetch, Scenario, fetch_trades, load_registry
from brokersync.testing._rules import ConformanceFailure
from brokersync.testing._transport import network_guard

if TYPE_CHECKING:
    import httpx

__all__ = ["BrokerConformance"]

T = TypeVar("T")

_SECRET_NAME = re.compile(r"pass|secret|token|private|pin\b|^sec$|_sec$|api_?key$")
_MONEY_FIELDS = ("entry_price", "exit_price", "quantity", "realized_pnl", "fees")
# More decimal places than any broker quotes: the value went through a float (Decimal(0.1) gives 55 places).
_FLOAT_NOISE_PLACES = 12


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class BrokerConformance:
    """Subclass this in a plugin's tests (name the subclass ``Test...``) to run the conformance suite.

    Each ``test_*`` method checks one rule of :data:`brokersync.testing.RULES` and fails with a
    :class:`~brokersync.testing.ConformanceFailure` that names the rule and the offending record.

    Example::

        from brokersync.testing import BrokerConformance

        class TestAcmeConformance(BrokerConformance):
            broker_key = "acme"
            plugin = acme_plugin  # optional: without it the entry point is loaded
            valid_credentials = {"username": "demo", "password": "demo-password"}
            invalid_credentials = {"username": "demo", "password": "wrong-password"}

            def make_transport(self) -> httpx.AsyncBaseTransport:
                return FakeAcmeApi().transport()

    Attributes:
        broker_key: The broker key (the entry point name).
        plugin: The plugin object; ``None`` loads it through its entry point.
        valid_credentials: Credentials the fake accepts.
        invalid_credentials: Credentials the fake rejects (same fields, a wrong secret).
        environment: The environment to test (default: the broker's default).
        since_tolerance: How much earlier than ``since`` a returned trade may close (for brokers
            whose API filters by day).
        max_requests_per_fetch: Most requests one ``get_trades`` call may send.
        retry_after_seconds: The ``Retry-After`` of the injected 429.
    """

    # Plain annotations (no ClassVar): subclasses set them as class attributes and mypy accepts it.
    broker_key: str
    plugin: Any = None
    valid_credentials: Mapping[str, str]
    invalid_credentials: Mapping[str, str]
    environment: str | None = None
    since_tolerance: dt.timedelta = dt.timedelta(0)
    max_requests_per_fetch: int = 1000
    retry_after_seconds: float = 2.0

    # -- what the author provides ----------------------------------------------------------------

    def make_transport(self) -> httpx.AsyncBaseTransport:
        """A fresh fake of the broker's API (deterministic: same data on every call)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_transport()")

    def clock(self) -> dt.datetime:
        """The current time the broker's hooks see (override to pin it)."""
        return _utcnow()

    # -- plumbing --------------------------------------------------------------------------------

    def _registry(self, rule: str) -> BrokerRegistry:
        try:
            return load_registry(self.broker_key, self.plugin)
        except (PluginError, ValueError) as exc:
            raise ConformanceFailure(rule, self.broker_key, f"the plugin does not load: {exc}") from exc

    def _scenario(self, rule: str) -> Scenario:
        return Scenario.build(
            self._registry(rule),
            self.broker_key,
            self.make_transport(),
            environment=self.environment,
            clock=self.clock,
            max_requests=self.max_requests_per_fetch,
        )

    def _run(self, rule: str, body: Callable[[Scenario], Awaitable[T]], scenario: Scenario | None = None) -> T:
        scenario = scenario or self._scenario(rule)

        async def main() -> T:
            try:
                return await body(scenario)
            finally:
                await scenario.aclose()

        # Requests a plugin sends with its own httpx client are refused (fast, no network) and recorded.
        with network_guard() as bypasses:
            scenario.bypasses = bypasses
            return asyncio.run(main())

    def _fail(self, rule: str, detail: str, record: Any = None) -> ConformanceFailure:
        return ConformanceFailure(rule, self.broker_key, detail, record=record)

    async def _history(self, scenario: Scenario, rule: str) -> list[Fetch]:
        auth = await scenario.authenticate(self.valid_credentials, rule)
        accounts = await scenario.accounts(auth, rule)
        return [await fetch_trades(scenario, auth, account, rule=rule) for account in accounts]

    def _fetched(self, rule: str) -> list[Fetch]:
        fetches = self._run(rule, lambda s: self._history(s, rule))
        if not any(f.trades or f.errors for f in fetches):
            raise self._fail(rule, "get_trades() returned no trade for any account; the fake must serve some trades")
        return fetches

    def _record_errors(self, rule: str, pattern: str) -> None:
        for fetch in self._fetched(rule):
            for error in fetch.errors:
                if re.search(pattern, error.reason, re.IGNORECASE):
                    raise self._fail(rule, f"account {fetch.account.id!r}: {error.reason}", error)

    # -- metadata and discovery ------------------------------------------------------------------

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

    # -- accounts and trades ---------------------------------------------------------------------

    def test_accounts_valid(self) -> None:
        """Rule ``accounts-valid``."""
        rule = "accounts-valid"

        async def body(scenario: Scenario) -> None:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            await scenario.accounts(auth, rule)

        self._run(rule, body)

    def test_trades_valid(self) -> None:
        """Rule ``trades-valid``."""
        rule = "trades-valid"
        for fetch in self._fetched(rule):
            if fetch.errors:
                error = fetch.errors[0]
                raise self._fail(
                    rule,
                    f"{len(fetch.errors)} invalid record(s) in account {fetch.account.id!r}: {error.reason}",
                    error,
                )

    def test_decimal_money(self) -> None:
        """Rule ``decimal-money``."""
        rule = "decimal-money"
        try:
            self._record_errors(rule, r"float|Decimal")
        except ConformanceFailure as exc:
            if exc.rule == rule or not re.search(r"float|Decimal", exc.detail):
                raise
            raise self._fail(rule, exc.detail) from exc
        for fetch in self._fetched(rule):
            for trade in fetch.trades:
                for name in _MONEY_FIELDS:
                    value = getattr(trade, name)
                    if isinstance(value, Decimal) and -int(value.as_tuple().exponent) > _FLOAT_NOISE_PLACES:
                        raise self._fail(
                            rule,
                            f"{name}={value} has float noise: it was built with Decimal(float); use "
                            "Decimal(str) or response.json(parse_float=Decimal)",
                            trade,
                        )

    def test_utc_times(self) -> None:
        """Rule ``utc-times``."""
        rule = "utc-times"
        try:
            self._record_errors(rule, r"naive|timezone|time zone")
        except ConformanceFailure as exc:
            if exc.rule == rule or not re.search(r"naive|timezone", exc.detail):
                raise
            raise self._fail(rule, exc.detail) from exc
        for fetch in self._fetched(rule):
            for trade in fetch.trades:
                if trade.opened_at > self.clock() + dt.timedelta(days=1):
                    raise self._fail(rule, "opened_at is in the future: a local time was labelled UTC?", trade)

    def test_raw_kept(self) -> None:
        """Rule ``raw-kept``."""
        rule = "raw-kept"
        for fetch in self._fetched(rule):
            for trade in fetch.trades:
                if not trade.raw:
                    raise self._fail(rule, "Trade.raw is empty: pass raw=<the broker's record>", trade)

    def test_unique_trade_ids(self) -> None:
        """Rule ``unique-trade-ids``."""
        rule = "unique-trade-ids"
        for fetch in self._fetched(rule):
            seen: dict[str, Trade] = {}
            for trade in fetch.trades:
                first = seen.setdefault(trade.broker_trade_id, trade)
                if first is not trade:
                    raise self._fail(
                        rule,
                        f"broker_trade_id {trade.broker_trade_id!r} appears twice in account {fetch.account.id!r} "
                        f"(first: {first!r})",
                        trade,
                    )

    def test_stable_trade_ids(self) -> None:
        """Rule ``stable-trade-ids``."""
        rule = "stable-trade-ids"
        first = {f.account.id: f for f in self._fetched(rule)}
        second = {f.account.id: f for f in self._fetched(rule)}
        if set(first) != set(second):
            raise self._fail(rule, f"account ids changed between two calls: {sorted(first)} then {sorted(second)}")
        for account_id, fetch in first.items():
            before = {t.broker_trade_id: t for t in fetch.trades}
            after = {t.broker_trade_id: t for t in second[account_id].trades}
            for trade_id, trade in after.items():
                if trade_id not in before:
                    raise self._fail(
                        rule, f"account {account_id!r}: the second fetch returned an id the first did not have", trade
                    )
            missing = sorted(set(before) - set(after))
            if missing:
                raise self._fail(
                    rule, f"account {account_id!r}: the second fetch lost {missing[:5]}", before[missing[0]]
                )

    def test_since_honoured(self) -> None:
        """Rule ``since-honoured``."""
        rule = "since-honoured"

        async def body(scenario: Scenario) -> tuple[list[Fetch], list[Fetch], dt.datetime]:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            accounts = await scenario.accounts(auth, rule)
            full = [await fetch_trades(scenario, auth, a, rule=rule) for a in accounts]
            closes = sorted({t.closed_at for f in full for t in f.trades if t.closed_at is not None})
            if len(closes) < 2:
                raise self._fail(rule, "the fake must serve trades closed at two different times at least")
            since = closes[len(closes) // 2]
            part = [await fetch_trades(scenario, auth, a, rule=rule, since=since) for a in accounts]
            return full, part, since

        full, part, since = self._run(rule, body)
        kind = self._registry(rule).metadata(self.broker_key).capabilities.cursor
        for whole, filtered in zip(full, part, strict=True):
            got = {t.broker_trade_id for t in filtered.trades}
            for trade in whole.trades:
                if trade.closed_at is not None and trade.closed_at >= since and trade.broker_trade_id not in got:
                    raise self._fail(
                        rule, f"get_trades(since={since.isoformat()}) missed a trade closed after it", trade
                    )
            if kind is not CursorKind.TIME:
                continue
            for trade in filtered.trades:
                if trade.closed_at is not None and trade.closed_at < since - self.since_tolerance:
                    raise self._fail(
                        rule,
                        f"get_trades(since={since.isoformat()}) returned a trade closed before since "
                        f"({trade.closed_at.isoformat()}); pass since to the broker's API or filter",
                        trade,
                    )

    def test_cursor_resumes(self) -> None:
        """Rule ``cursor-resumes``."""
        rule = "cursor-resumes"

        async def body(scenario: Scenario) -> list[tuple[Fetch, Fetch]]:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            pairs = []
            for account in await scenario.accounts(auth, rule):
                whole = await fetch_trades(scenario, auth, account, rule=rule)
                again = await fetch_trades(scenario, auth, account, rule=rule, cursor=whole.last_cursor)
                pairs.append((whole, again))
            return pairs

        kind = self._registry(rule).metadata(self.broker_key).capabilities.cursor
        for whole, again in self._run(rule, body):
            known = {t.broker_trade_id for t in whole.trades}
            for trade in again.trades:
                if trade.broker_trade_id not in known:
                    raise self._fail(rule, "resuming from the last cursor returned a trade never seen before", trade)
            if kind is CursorKind.OPAQUE:
                if whole.last_cursor is None:
                    raise self._fail(rule, "capabilities.cursor is 'opaque' but get_trades returned no cursor")
                if len(whole.trades) > 1 and len(again.trades) >= len(whole.trades):
                    raise self._fail(
                        rule,
                        f"get_trades(cursor={whole.last_cursor!r}) returned the whole history again "
                        f"({len(again.trades)} trades)",
                        again.trades[0],
                    )

    def test_pagination_terminates(self) -> None:
        """Rule ``pagination-terminates``."""
        rule = "pagination-terminates"
        self._fetched(rule)

    # -- the core client ------------------------------------------------------------------------

    def test_rate_limit_wait(self) -> None:
        """Rule ``rate-limit-wait``."""
        rule = "rate-limit-wait"

        async def body(scenario: Scenario) -> tuple[Fetch, Fetch, list[float]]:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            account = (await scenario.accounts(auth, rule))[0]
            clean = await fetch_trades(scenario, auth, account, rule=rule)
            waits_before = len(scenario.sleeps)
            scenario.transport.inject((429, {"Retry-After": f"{self.retry_after_seconds:g}"}))
            try:
                throttled = await fetch_trades(scenario, auth, account, rule=rule)
            except ConformanceFailure as exc:
                if exc.rule != rule:
                    raise
                raise self._fail(rule, f"a single 429 with Retry-After failed the fetch: {exc.detail}") from exc
            return clean, throttled, scenario.sleeps[waits_before:]

        clean, throttled, waits = self._run(rule, body)
        if sum(waits) < self.retry_after_seconds:
            raise self._fail(
                rule,
                f"after a 429 with Retry-After: {self.retry_after_seconds:g} the plugin did not wait through ctx.sleep "
                f"(waits seen: {waits}); let the core client's BrokerRateLimitError propagate",
            )
        lost = sorted({t.broker_trade_id for t in clean.trades} - {t.broker_trade_id for t in throttled.trades})
        if lost:
            raise self._fail(rule, f"after one 429 the fetch lost {len(lost)} trade(s): {lost[:5]}")

    def test_core_client_only(self) -> None:
        """Rule ``core-client-only``."""
        rule = "core-client-only"
        scenario = self._scenario(rule)

        async def body(scenario: Scenario) -> None:
            try:
                await self._history(scenario, rule)
            except ConformanceFailure:
                if not scenario.bypasses:
                    raise

        self._run(rule, body, scenario)
        bypasses = scenario.bypasses
        if bypasses:
            raise self._fail(rule, "the plugin sent requests with its own httpx client; use ctx.http", bypasses[0])
        around = scenario.transport.bypassing_requests
        if around:
            raise self._fail(rule, "requests reached the fake API without going through ctx.http", around[0])
        if not scenario.transport.requests:
            raise self._fail(rule, "no request reached the fake API: call the broker through ctx.http")
        counted, seen = scenario.metrics.requests, len(scenario.transport.core_requests)
        if counted != seen:
            raise self._fail(
                rule, f"the core client counted {counted} request(s) but the fake API received {seen} through it"
            )

    def test_error_mapping_401(self) -> None:
        """Rule ``error-mapping-401``."""
        rule = "error-mapping-401"

        async def body(scenario: Scenario) -> None:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            account = (await scenario.accounts(auth, rule))[0]
            scenario.transport.inject_always(401)
            for call in ("get_accounts", "get_trades"):
                try:
                    if call == "get_accounts":
                        result: Any = await scenario.broker.get_accounts(auth)
                    else:
                        result = [b async for b in scenario.broker.iter_trades(auth, account)]
                except BrokerAuthError:
                    continue
                except Exception as exc:
                    raise self._fail(
                        rule, f"{call}() answered HTTP 401 with {type(exc).__name__}: {exc}; expected BrokerAuthError"
                    ) from exc
                raise self._fail(rule, f"{call}() returned normally although every request got HTTP 401", result)

        self._run(rule, body)

    def test_error_mapping_5xx(self) -> None:
        """Rule ``error-mapping-5xx``."""
        rule = "error-mapping-5xx"

        async def body(scenario: Scenario) -> None:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            account = (await scenario.accounts(auth, rule))[0]
            scenario.transport.inject_always(503)
            try:
                batches = [b async for b in scenario.broker.iter_trades(auth, account)]
            except (BrokerServerError, BrokerUnavailableError):
                return
            except Exception as exc:
                raise self._fail(
                    rule, f"HTTP 503 surfaced as {type(exc).__name__}: {exc}; expected BrokerServerError"
                ) from exc
            count = sum(len(b.trades) for b in batches)
            raise self._fail(rule, f"get_trades() returned {count} trade(s) although every request got HTTP 503")

        self._run(rule, body)


def _metadata_summary(meta: BrokerMetadata) -> str:
    return f"BrokerMetadata(key={meta.key!r}, name={meta.name!r}, docs_url={meta.docs_url!r})"
