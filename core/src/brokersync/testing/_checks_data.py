"""Checks of what the plugin returns: accounts and trades, ids, money, times, since, cursors, paging."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from brokersync.models import CursorKind, Trade
from brokersync.testing._base import SuiteBase
from brokersync.testing._harness import Fetch, Scenario, fetch_trades
from brokersync.testing._rules import ConformanceFailure

__all__ = ["DataChecks"]

_MONEY_FIELDS = ("entry_price", "exit_price", "quantity", "realized_pnl", "fees")
# More decimal places than any broker quotes: the value went through a float (Decimal(0.1) gives 55 places).
_FLOAT_NOISE_PLACES = 12


class DataChecks(SuiteBase):
    """Checks of what the plugin returns: accounts and trades, ids, money, times, since, cursors, paging."""

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
        if self._reports_executions_only(rule):
            return  # no round trips to compare; executions-valid and cursor-advances check executions

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
