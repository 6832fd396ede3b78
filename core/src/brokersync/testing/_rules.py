"""The conformance rules: stable ids, what each demands, and the failure every check raises."""

from __future__ import annotations

from typing import Any

import attrs

from brokersync._redact import redact

__all__ = ["FILE_RULES", "RULES", "ConformanceFailure", "Rule", "describe_record"]


@attrs.frozen
class Rule:
    """One rule of the broker contract that the conformance suite checks."""

    id: str
    summary: str


_RULE_LIST = (
    Rule(
        "plugin-runs",
        "the plugin loads and get_trades() runs without raising (a root cause other rules then skip on)",
    ),
    Rule("metadata-complete", "broker_metadata() returns valid, complete metadata whose key is the broker key"),
    Rule("entry-point", "the broker is discoverable through its 'brokersync.brokers' entry point and loads cleanly"),
    Rule("secret-fields", "the credential schema marks every secret field (password, key secret, token) secret"),
    Rule("auth-token", "authenticate() returns an AuthResult with a token and a tz-aware expiry (None: static token)"),
    Rule("refresh-token", "refresh_token is implemented exactly when capabilities.refresh_token says so, and works"),
    Rule("bad-credentials", "rejected credentials raise BrokerAuthError, without the secret in the message"),
    Rule("accounts-valid", "get_accounts() returns at least one valid Account with unique ids"),
    Rule("trades-valid", "every record get_trades() returns normalizes into a valid Trade"),
    Rule("decimal-money", "prices, quantities, P&L and fees are Decimal (or decimal text), never float"),
    Rule("utc-times", "times are timezone-aware (stored as UTC), never naive"),
    Rule("raw-kept", "every trade keeps the broker's raw record for audit"),
    Rule("unique-trade-ids", "broker_trade_id is unique within an account in one fetch"),
    Rule(
        "stable-trade-ids", "two fetches of the same history return the same broker_trade_ids (values may be corrected)"
    ),
    Rule("since-honoured", "get_trades(since=t) returns every trade closed at/after t and none closed before"),
    Rule("cursor-resumes", "get_trades(cursor=last cursor) resumes after the history already fetched"),
    Rule("pagination-terminates", "paging ends: no request is repeated within one get_trades call"),
    Rule("rate-limit-wait", "a 429 from the broker becomes a wait and a retry, not a failure or lost trades"),
    Rule("core-client-only", "every request goes through ctx.http (the core client); the plugin has no own client"),
    Rule("error-mapping-401", "an HTTP 401 while fetching data surfaces as BrokerAuthError"),
    Rule("error-mapping-5xx", "a broker that keeps answering 5xx surfaces as BrokerServerError, not bad data"),
    Rule(
        "cursor-advances",
        "resuming from a page's cursor returns only what follows that page (no lag, never backwards)",
    ),
    Rule(
        "rate-limit-persistent",
        "a broker that keeps answering 429 surfaces as BrokerRateLimitError, not another exception",
    ),
    Rule("no-secret-output", "no secret (credential, token) is written through logging, loguru or print"),
    Rule("non-blocking-hooks", "no hook blocks the event loop (time.sleep, blocking I/O in a coroutine)"),
    Rule(
        "executions-valid",
        "every execution normalizes: positive Decimal quantity, tz-aware time, an instrument and a side",
    ),
    Rule("unique-execution-ids", "broker_execution_id is unique within an account in one fetch"),
)

#: Every rule, by id.
RULES: dict[str, Rule] = {rule.id: rule for rule in _RULE_LIST}


_FILE_RULE_LIST = (
    Rule("file-format-declared", "the format has a short name, a one-line description and file extensions"),
    Rule(
        "file-sniff-accepts",
        "sniff() answers True from the first bytes of every sample, and no other installed format claims it",
    ),
    Rule(
        "file-sniff-rejects",
        "sniff() answers False, without raising, for empty, junk and other formats' files and for a very long line",
    ),
    Rule("file-parse-streams", "parse() yields pages while reading: it never reads the whole file before the first"),
    Rule(
        "file-records-valid",
        "every record of a sample is a valid trade, execution or cancellation: Decimal money, UTC times, an account",
    ),
    Rule("file-ids-stable", "parsing the same file twice gives the same record ids, in the same order"),
    Rule(
        "file-identical-rows-kept",
        "two identical rows stay two records (distinct ids unless the row carries the broker's id); others keep theirs",
    ),
    Rule(
        "file-bad-row-reported",
        "a malformed row is reported with its line number and a reason, and every other row is still read",
    ),
    Rule(
        "file-junk-refused",
        "an empty file, junk, binary data or another format's file gives FileFormatError or no record, never a crash",
    ),
    Rule("file-long-line-refused", "a 50 MB line is refused with FileFormatError after reading a bounded part of it"),
    Rule(
        "file-entities-refused",
        "a DOCTYPE with entities (billion laughs, external entity) is refused, or read without expanding any",
    ),
)

#: Every rule of the file-format suite (:class:`~brokersync.testing.FileFormatConformance`), by id.
FILE_RULES: dict[str, Rule] = {rule.id: rule for rule in _FILE_RULE_LIST}


class ConformanceFailure(AssertionError):
    """A plugin broke a conformance rule. The message names the rule, the broker and the record.

    Args:
        rule: The id of the broken rule (a key of :data:`RULES` or :data:`FILE_RULES`).
        broker: The broker key.
        detail: What was wrong.
        record: The offending record, when there is one (shown with its repr).
    """

    def __init__(self, rule: str, broker: str, detail: str, *, record: Any = None) -> None:
        known = RULES.get(rule) or FILE_RULES.get(rule)
        if known is None:
            raise ValueError(f"unknown conformance rule {rule!r}")
        self.rule = rule
        self.broker = broker
        self.detail = detail
        self.record = record
        message = f"broker {broker!r} breaks conformance rule '{rule}' ({known.summary}): {detail}"
        if record is not None:
            message += f"\n    offending record: {describe_record(record)}"
        super().__init__(redact(message))


def describe_record(record: Any) -> str:
    """A one-line description of a record for failure messages (never the raw payload)."""
    text = repr(record)
    return text if len(text) <= 400 else text[:397] + "..."
