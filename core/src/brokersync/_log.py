"""Structured logging through loguru, with secrets redacted.

As a library, brokersync is silent: ``logger.disable("brokersync")`` runs when loguru is first
needed (importing loguru eagerly would slow every CLI start). The CLI (or an integrator) turns it on
with :func:`enable_logging` or loguru's ``logger.enable("brokersync")``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

from brokersync._redact import redact, redact_value

if TYPE_CHECKING:
    from loguru import Logger, Record

__all__ = ["enable_logging", "get_logger"]


def _application_decided() -> bool:
    # loguru keeps enable()/disable() calls in its core's activation list (not public API); if the
    # application already said something about "brokersync", that decision stands.
    activations = getattr(getattr(logger, "_core", None), "activation_list", None)
    if not isinstance(activations, list):
        return False
    return any(isinstance(e, tuple) and e and str(e[0]).startswith("brokersync") for e in activations)


# A library stays quiet unless the application asks (brokersync.enable_logging or logger.enable).
if not _application_decided():
    logger.disable("brokersync")


def _patch(record: Record) -> None:
    record["message"] = redact(record["message"])
    record["extra"].update(redact_value(dict(record["extra"])))


def get_logger(**context: Any) -> Logger:
    """A logger bound to ``context`` (broker, connection_id, ...) whose output is redacted."""
    return logger.patch(_patch).bind(**context)


def enable_logging(*, level: str = "INFO", json: bool = False, requests: bool = True) -> None:
    """Send brokersync's logs to stderr, as text or as one JSON object per line.

    ``requests=False`` leaves out the line logged for each HTTP request attempt (the CLI at its
    default level: the error a command prints already says what the broker answered).

    Replaces loguru's handlers; an application with its own loguru set-up calls
    ``logger.enable("brokersync")`` instead.
    """
    logger.remove()
    logger.enable("brokersync")

    def keep(record: Record) -> bool:
        return requests or not {"method", "attempt", "status"} <= record["extra"].keys()

    if json:
        logger.add(sys.stderr, level=level, serialize=True, filter=keep)
    else:
        logger.add(
            sys.stderr,
            level=level,
            format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message} <dim>{extra}</dim>",
            filter=keep,
        )
