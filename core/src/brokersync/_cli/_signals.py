"""Stop signals for commands that sync: SIGINT, SIGTERM and SIGHUP stop the sync the same way.

``timeout``, systemd and ``docker stop`` send SIGTERM; closing a terminal sends SIGHUP. Each stops
the syncs in flight like Ctrl-C: every batch already stored stays stored, the open batch rolls
back, the run is recorded ``interrupted`` with what it stored, the lease goes back (the connection
can be synced again at once), and the command exits with 128 + the signal's number (130, 143,
129), as shells report a process a signal ended. A second signal during that clean-up exits at once
(the lease then lapses by itself after its TTL).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import click

from brokersync._cli._engine import run

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync

T = TypeVar("T")

__all__ = ["STOP_SIGNALS", "lease_ttl_option", "run_stoppable"]

#: The signals that stop a sync cleanly (SIGHUP is missing on Windows).
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


def _lease_ttl(ctx: click.Context, param: click.Parameter, value: float | None) -> dt.timedelta | None:
    if value is None:
        return None
    from brokersync._config import parse_lease_ttl
    from brokersync.errors import ConfigurationError

    try:
        return parse_lease_ttl(value, "--lease-ttl")
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


#: ``--lease-ttl SECONDS``: how long a crashed sync may block its connection.
lease_ttl_option = click.option(
    "--lease-ttl",
    type=float,
    callback=_lease_ttl,
    metavar="SECONDS",
    help="How long a sync's lease lasts without a heartbeat: a crashed sync blocks its connection at most this "
    "long (default 60). Env: BROKERSYNC_LEASE_TTL.",
)


def run_stoppable(coro_fn: Callable[[BrokerSync], Awaitable[T]], make: Callable[[], BrokerSync]) -> T:
    """Like :func:`~brokersync._cli._engine.run`, but a stop signal cancels the work cleanly and
    exits with ``128 + signal number`` after the engine recorded the interrupted runs."""
    received: list[signal.Signals] = []

    async def guarded(engine: BrokerSync) -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(sig: signal.Signals) -> None:
            if received:  # a second signal: the clean-up takes too long for the user; die by it
                signal.signal(sig, signal.SIG_DFL)
                os.kill(os.getpid(), sig)
                return
            received.append(sig)
            task.cancel(msg=sig.name)  # the engine records the runs as stopped "by SIGTERM"

        installed = []
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows, or not main thread
                continue
            installed.append(sig)
        try:
            return await coro_fn(engine)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        return run(guarded, make)
    except (asyncio.CancelledError, KeyboardInterrupt):
        sig = received[0] if received else signal.SIGINT
        click.echo(
            f"Stopped by {sig.name}: the sync was recorded as interrupted, the trades it stored are kept and its "
            "connection is free again (`brokersync runs` shows what was stored).",
            err=True,
        )
        raise SystemExit(128 + sig.value) from None
