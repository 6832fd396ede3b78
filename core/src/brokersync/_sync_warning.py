"""A run's data-quality warnings: :class:`SyncWarning` (re-exported by :mod:`brokersync.results`)."""

from __future__ import annotations

import attrs

__all__ = ["MAX_WARNINGS", "SyncWarning"]

#: How many warnings a run keeps (in its result and audit row); the rest are counted.
MAX_WARNINGS = 100


@attrs.frozen(kw_only=True)
class SyncWarning:
    """A data-quality warning from a run: something a plugin or the core noticed that fails no record.

    Plugins report them with :meth:`BrokerContext.warn <brokersync.BrokerContext.warn>`; the run
    keeps the first :data:`MAX_WARNINGS` (redacted) in :attr:`SyncResult.warnings` and in its audit
    row, and counts the rest in :attr:`SyncResult.warning_count`. A warning changes no status:
    a run with warnings still succeeds.

    Attributes:
        message: What was noticed, for the user (secrets masked).
        account_id: The broker account it concerns (while ``get_trades`` runs for an account, the
            core fills in that account when the plugin gives none).
        record_id: The broker's id of the record it concerns (a trade, an execution), if any.
        code: A stable machine-readable kind, namespaced by who reports it (e.g.
            ``"ibkr.unreadable_row"``; the core's own start with ``brokersync.``), if any.
    """

    message: str
    account_id: str | None = None
    record_id: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        where = ", ".join(
            part
            for part in (
                f"account {self.account_id}" if self.account_id else "",
                f"record {self.record_id}" if self.record_id else "",
            )
            if part
        )
        return f"{f'[{self.code}] ' if self.code else ''}{f'{where}: ' if where else ''}{self.message}"
