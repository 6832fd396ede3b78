"""Structured logging through loguru, with secrets redacted.

As a library, brokersync is silent: ``brokersync/__init__`` calls ``logger.disable("brokersync")``.
The CLI (or an integrator) turns it on with :func:`enable_logging` or ``logger.enable``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from loguru import logger

from brokersync._redact import redact, redact_value

if TYPE_CHECKING:
    from loguru import Logger, Record

__all__ = ["enable_logging", "get_logger"]

# A library stays quiet unless the application asks (brokersync.enable_logging or logger.enable).
logger.disable("brokersync")


def _patch(record: Record) -> None:
    record["message"] = redact(record["message"])
    record["extra"].update(redact_value(dict(record["extra"])))


def get_logger(**context: Any) -> Logger:
    """A logger bound to ``context`` (broker, connection_id, ...) whose output is redacted."""
    return logger.patch(_patch).bind(**context)


def enable_logging(*, level: str = "INFO", json: bool = False) -> None:
    """Send brokersync's logs to stderr, as text or as one JSON object per line.

    Replaces loguru's handlers; an application with its own loguru set-up calls
    ``logger.enable("brokersync")`` instead.
    """
    logger.remove()
    logger.enable("brokersync")
    if json:
        logger.add(sys.stderr, level=level, serialize=True)
    else:
        logger.add(
            sys.stderr,
            level=level,
            format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> {message} <dim>{extra}</dim>",
        )
