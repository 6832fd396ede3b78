"""Checks of how a plugin behaves over time: cursors that advance, rate limits that surface as
such, secrets that stay out of output, hooks that never block the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
import traceback
from collections.abc import Iterator
from typing import Any

from brokersync.errors import BrokerRateLimitError
from brokersync.testing._base import SuiteBase
from brokersync.testing._faults import faulted_steps
from brokersync.testing._harness import Scenario
from brokersync.testing._raw import RawPage, raw_pages
from brokersync.testing._transport import network_guard

__all__ = ["HygieneChecks"]

#: A hook holding the event loop longer than this between two requests blocks every other sync.
BLOCKING_SECONDS = 0.5


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(f"logging {record.name}: {record.getMessage()}")
        except Exception:  # a bad format string in the plugin's log call: keep the raw message
            self.lines.append(f"logging {record.name}: {record.msg!r} {record.args!r}")


@contextlib.contextmanager
def _captured() -> Iterator[list[str]]:
    """Everything written through print (stdout/stderr), stdlib logging and loguru inside the block."""
    lines: list[str] = []
    out, err = io.StringIO(), io.StringIO()
    handler = _Collect()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    from loguru import logger

    sink = logger.add(lambda message: lines.append(f"loguru: {message.record['message']}"), level=0)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield lines
    finally:
        logger.remove(sink)
        root.removeHandler(handler)
        root.setLevel(level)
        lines.extend(f"print: {line}" for line in out.getvalue().splitlines())
        lines.extend(f"stderr: {line}" for line in err.getvalue().splitlines())
        lines.extend(handler.lines)


class HygieneChecks(SuiteBase):
    """Checks of cursors, persistent rate limits, secrets in output and blocking hooks."""

    def test_cursor_advances(self) -> None:
        """Rule ``cursor-advances``."""
        rule = "cursor-advances"

        async def body(scenario: Scenario) -> list[tuple[str, list[RawPage], list[list[RawPage]]]]:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            found = []
            for account in await scenario.accounts(auth, rule):
                pages = await raw_pages(scenario, auth, account)
                resumed = [
                    await raw_pages(scenario, auth, account, cursor=page.cursor) if page.cursor is not None else []
                    for page in pages
                ]
                found.append((account.id, pages, resumed))
            return found

        for account_id, pages, resumed in self._run(rule, body):
            for index, (page, again) in enumerate(zip(pages, resumed, strict=True)):
                if page.cursor is None:
                    continue
                got = set().union(*(p.ids for p in again)) if again else set()
                earlier = set().union(*(p.ids for p in pages[:index])) if index else set()
                back = sorted(got & earlier)
                if back:
                    raise self._fail(
                        rule,
                        f"account {account_id!r}: resuming from the cursor of page {index + 1} ({page.cursor!r}) "
                        f"returned {len(back)} record(s) of earlier pages unchanged, e.g. {back[0].split(' #')[0]}: "
                        "the cursor moves backwards, so every sync fetches those pages again; return the cursor "
                        "that resumes after the page",
                    )
                own = page.ids
                if own and own <= got:
                    raise self._fail(
                        rule,
                        f"account {account_id!r}: resuming from the cursor of page {index + 1} ({page.cursor!r}) "
                        "returned that whole page again: the cursor lags one page (it is the position the page "
                        "started at), so pages are fetched again forever; return the position after the page",
                    )

    def test_rate_limit_persistent(self) -> None:
        """Rule ``rate-limit-persistent``."""
        rule = "rate-limit-persistent"
        retry = (429, {"Retry-After": f"{self.retry_after_seconds:g}"})
        outcomes = faulted_steps(self._run, self.valid_credentials, rule, retry)
        self._judge_faults(
            rule,
            outcomes,
            (BrokerRateLimitError,),
            "HTTP 429",
            "let the core client's BrokerRateLimitError propagate (or raise BrokerRateLimitError(retry_after=...)) "
            "so the engine waits and reports a rate limit instead of a failure",
        )

    def test_no_secret_output(self) -> None:
        """Rule ``no-secret-output``."""
        rule = "no-secret-output"
        tokens: list[str] = []

        async def body(scenario: Scenario) -> None:
            auth = await scenario.authenticate(self.valid_credentials, rule)
            tokens.extend(t for t in (auth.access_token, auth.refresh_token) if t)
            if scenario.broker.implements("refresh_token"):
                with contextlib.suppress(Exception):
                    renewed = await scenario.broker.refresh_token(self.valid_credentials, auth)
                    if renewed is not None:
                        tokens.extend(t for t in (renewed.access_token, renewed.refresh_token) if t)
            await self._history(scenario, rule)

        with _captured() as lines:
            self._run(rule, body)
        meta = self._registry(rule).metadata(self.broker_key)
        secrets = {
            f"credential field {k!r}": str(v) for k, v in self.valid_credentials.items() if k in meta.secret_fields
        }
        secrets.update({f"token #{n + 1} authenticate/refresh_token returned": t for n, t in enumerate(tokens)})
        for what, value in secrets.items():
            if len(value) < 6:
                continue
            for line in lines:
                if value in line:
                    channel = line.split(":", 1)[0]
                    raise self._fail(
                        rule,
                        f"the plugin wrote the {what} through {channel}: {line.replace(value, '***')[:200]!r}; never "
                        "log or print credentials or tokens (log ids and counts; use ctx.logger)",
                    )

    def test_non_blocking_hooks(self) -> None:
        """Rule ``non-blocking-hooks``."""
        rule = "non-blocking-hooks"
        scenario = self._scenario(rule)
        slow: list[str] = []
        sleeps: list[str] = []

        class _Slow(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                message = record.getMessage()
                if "took" in message:
                    slow.append(message)

        real_sleep = time.sleep

        def watched_sleep(seconds: Any) -> None:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return real_sleep(seconds)  # a thread of its own may sleep
            caller = traceback.extract_stack(limit=2)[0]
            sleeps.append(f"time.sleep({seconds!r}) in {caller.name}() at {caller.filename}:{caller.lineno}")
            return real_sleep(seconds)

        async def main() -> None:
            # The fake answers without a network wait, so let each request end a loop step as a
            # real one would: what remains between two steps is the plugin's own work.
            loop = asyncio.get_running_loop()
            loop.slow_callback_duration = BLOCKING_SECONDS
            scenario.transport.yield_per_request = True
            try:
                await self._history(scenario, rule)
            finally:
                await scenario.aclose()

        handler = _Slow(level=logging.WARNING)
        log = logging.getLogger("asyncio")
        log.addHandler(handler)
        time.sleep = watched_sleep
        try:
            with network_guard() as bypasses:
                scenario.bypasses = bypasses
                asyncio.run(main(), debug=True)
        finally:
            time.sleep = real_sleep
            log.removeHandler(handler)
        if sleeps:
            raise self._fail(
                rule,
                f"a hook called {sleeps[0]} on the event loop: every other sync in the process stops meanwhile; "
                "await ctx.sleep(seconds) instead",
            )
        if slow:
            raise self._fail(
                rule,
                f"a hook held the event loop longer than {BLOCKING_SECONDS:g} s: {_shorten(slow[0])}; no "
                "blocking I/O or long CPU work in a coroutine (every other sync in the process stops meanwhile)",
            )


def _shorten(message: Any) -> str:
    text = str(message)
    return text if len(text) <= 300 else text[:297] + "..."
