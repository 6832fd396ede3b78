"""The pages a plugin's ``get_trades`` yields, as it yields them (executions included).

The facade normalizes trade records into batches; the execution checks and the cursor check need
each page's executions and ids as well, so they call the hook through the facade
(``Broker.get_trades_unchecked``: the same ``ctx.http``, the same token session) and read the pages raw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from brokersync._broker import await_me_maybe
from brokersync._converters import describe_error, wire_converter
from brokersync.errors import RecordValidationError
from brokersync.models import Execution, Trade, TradePage

if TYPE_CHECKING:
    from brokersync._broker import Broker
    from brokersync.models import Account, AuthResult
    from brokersync.testing._harness import Scenario

__all__ = ["RawPage", "normalize_execution", "raw_pages"]


@attrs.frozen
class RawPage:
    """One page as the plugin yielded it: its records' ids and versions, its executions, its cursor."""

    trade_ids: tuple[str, ...]
    executions: tuple[Any, ...]
    cursor: str | None
    versions: tuple[str, ...] = ()

    @property
    def ids(self) -> set[str]:
        """Each trade and execution of the page as ``kind:id #content-hash``.

        Two deliveries of a record compare equal only when the record is unchanged: a broker that
        re-delivers a corrected record after a cursor is right to, a cursor that lags is not.
        """
        found = set(self.versions)
        for item in self.executions:
            value = item.broker_execution_id if isinstance(item, Execution) else _get(item, "broker_execution_id")
            if value is not None:
                found.add(f"execution:{value} #{_digest(item)}")
        return found


def _digest(item: Any) -> str:
    text = json.dumps(item, sort_keys=True, default=str) if isinstance(item, Mapping) else repr(item)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else None


def _trade_id(item: Any) -> str | None:
    if isinstance(item, Trade):
        return item.broker_trade_id
    value = _get(item, "broker_trade_id")
    return None if value is None else str(value)


def _versions(records: Any) -> tuple[str, ...]:
    return tuple(f"trade:{_trade_id(r)} #{_digest(r)}" for r in records if _trade_id(r) is not None)


def _page(item: Any) -> RawPage:
    if isinstance(item, TradePage):
        ids = tuple(i for i in (_trade_id(r) for r in item.records) if i is not None)
        return RawPage(
            trade_ids=ids, executions=tuple(item.executions), cursor=item.cursor, versions=_versions(item.records)
        )
    ident = _trade_id(item)
    return RawPage(trade_ids=(ident,) if ident else (), executions=(), cursor=None, versions=_versions([item]))


async def raw_pages(
    scenario: Scenario, auth: AuthResult, account: Account, *, cursor: str | None = None
) -> list[RawPage]:
    """Call the plugin's ``get_trades`` through the facade's plugin manager; return its pages."""
    broker = scenario.broker
    http = scenario.http
    if http is not None:
        http.begin_fetch()  # a paging loop fails pagination-terminates, never hangs the suite
    try:
        return await _pages(broker, auth, account, cursor)
    except Exception:
        if http is not None and http.loop is not None:
            raise http.loop from None
        raise
    finally:
        if http is not None:
            http.end_fetch()


async def _pages(broker: Broker, auth: AuthResult, account: Account, cursor: str | None) -> list[RawPage]:
    result = broker.get_trades_unchecked(auth, account, cursor=cursor)
    pages: list[RawPage] = []
    if hasattr(result, "__aiter__"):
        async for item in result:
            pages.append(_page(item))
        return pages
    result = await await_me_maybe(result)
    if isinstance(result, TradePage):
        return [_page(result)]
    records = list(result)
    ids = tuple(i for i in (_trade_id(r) for r in records) if i)
    return [RawPage(trade_ids=ids, executions=(), cursor=None, versions=_versions(records))]


def normalize_execution(item: Any, *, account_id: str) -> Execution:
    """Validate one entry of ``TradePage.executions`` as the core will.

    Raises:
        RecordValidationError: naming the execution's id and what is wrong.
    """
    if isinstance(item, Execution):
        result = item
    elif isinstance(item, Mapping):
        data = dict(item)
        data.setdefault("account_id", account_id)
        data.setdefault("raw", dict(item))
        try:
            result = wire_converter().structure(data, Execution)
        except Exception as exc:
            raise RecordValidationError(
                f"invalid execution {item.get('broker_execution_id')!r}: {describe_error(exc)}"
            ) from exc
    else:
        raise RecordValidationError(f"an execution must be an Execution or a mapping, got {type(item).__name__}")
    if result.executed_at.tzinfo is None or result.executed_at.utcoffset() != dt.timedelta(0):
        raise RecordValidationError(f"execution {result.broker_execution_id!r}: executed_at is not UTC")
    return result
