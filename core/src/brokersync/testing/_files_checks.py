"""The file-format rules: one ``test_file_*`` method per rule of :data:`~brokersync.testing.FILE_RULES`."""

from __future__ import annotations

import re

from brokersync._generic_csv import GENERIC_CSV
from brokersync.files import SNIFF_BYTES, FileFormat, FileFormatError, decode_head, detect_format
from brokersync.testing._files_base import FileSample, FileSuiteBase, Parsed, Record
from brokersync.testing._files_derive import Lines, long_line_file, with_doctype

__all__ = ["FileChecks"]

_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,47}")
_EXTENSION = re.compile(r"(\.[a-z0-9]+)+")
#: Texts no broker format is in; every sniff answers False and no parse reads a record from them.
_NOT_EXPORTS = {
    "an empty file": "",
    "blank lines": "\n   \n\n",
    "a letter": "Dear customer,\nyour statement is attached.\nKind regards, Your Broker\n" * 20,
    "a JSON document": '{"trades": [{"id": 1, "symbol": "AAPL", "price": "185.50"}]}\n',
    "an RSS feed (XML)": '<?xml version="1.0"?>\n<rss version="2.0"><channel><title>News</title></channel></rss>\n',
    "a login web page": (
        "<!DOCTYPE html>\n<html><head><title>Log in</title></head><body><table>"
        "<tr><td>Date</td><td>Amount</td></tr></table></body></html>\n"
    ),
    "a 64 KiB line": "x," * (SNIFF_BYTES // 2),
}
_GENERIC = "Date,Time,Symbol,Quantity,Price,Side,Commission\n2024-01-02,09:30:00,AAPL,10,185.50,Buy,1.00\n"
_BINARY = bytes(range(256)) * 64
_LONG_LINE_MB = 50
#: A parser that refuses a 50 MB line must not have read more than this of it.
LONG_LINE_READ_LIMIT = 16 * 1024 * 1024
_NO_LINES = (
    "its records carry no raw['_line'], so the suite cannot find the row a record came from; put the row's "
    "line number in raw['_line'] (the core stores it as the record's source row)"
)


class FileChecks(FileSuiteBase):
    """The checks of one export file format."""

    def big_sample(self, size: int) -> bytes | None:
        """A valid file of about ``size`` bytes (default ``None``: the sample's rows, repeated)."""
        return None

    # -- helpers -----------------------------------------------------------------------------------

    def _lined(self, rule: str, fmt: FileFormat, sample: FileSample, what: str) -> tuple[Parsed, list[Record]]:
        parsed = self._parsed_ok(rule, fmt, sample)
        lined = sorted((r for r in parsed.records if r.line is not None), key=lambda r: r.line or 0)
        if not lined:
            raise self._fail(rule, f"{_NO_LINES}, or override {what}")
        return parsed, lined

    def _sample(self, rule: str) -> FileSample:
        return self._samples(rule)[0]

    # -- the rules -----------------------------------------------------------------------------------

    def test_file_format_declared(self) -> None:
        """Rule ``file-format-declared``."""
        rule = "file-format-declared"
        fmt = self._format(rule)
        problems = []
        if not _NAME.fullmatch(fmt.name):
            problems.append(
                f"the name {fmt.name!r} is not a short lowercase name like 'acme-fills' (what --format takes)"
            )
        if self.broker_key is not None and fmt.name == "generic-csv":
            problems.append("the name 'generic-csv' is brokersync's own format")
        description = fmt.description.strip()
        if not description or "\n" in description or len(description) > 200:
            problems.append("the description must be one line (at most 200 characters) naming the export")
        if not fmt.extensions:
            problems.append("extensions is empty: give the file endings the broker writes, e.g. ('.csv',)")
        problems += [f"the extension {e!r} is not like '.csv'" for e in fmt.extensions if not _EXTENSION.fullmatch(e)]
        if problems:
            raise self._fail(rule, "; ".join(problems), fmt)

    def test_file_sniff_accepts(self) -> None:
        """Rule ``file-sniff-accepts``."""
        rule = "file-sniff-accepts"
        fmt = self._format(rule)
        formats = self._formats(rule)
        for sample in self._samples(rule):
            try:
                head, _ = decode_head(sample.data[:SNIFF_BYTES])
            except FileFormatError as exc:
                raise self._fail(rule, f"the sample {sample.name!r} is not text: {exc}") from exc
            try:
                answer = fmt.sniff(head)
            except Exception as exc:
                raise self._fail(
                    rule, f"sniff() raised {type(exc).__name__}: {exc} on the sample {sample.name!r}"
                ) from exc
            if answer is not True:
                raise self._fail(
                    rule,
                    f"sniff() answered {answer!r} for the sample {sample.name!r} (given its first {SNIFF_BYTES:,} "
                    "bytes, decoded): return True when the head has this export's header row or root element",
                )
            # The plugin's own formats must not both claim a sample (import would ask for --format). An
            # overlap with brokersync's generic CSV is the core's to settle, not the format's: not judged.
            others = [f.name for f in detect_format(head, formats) if f.name not in (fmt.name, GENERIC_CSV.name)]
            if others:
                raise self._fail(
                    rule,
                    f"the sample {sample.name!r} is also claimed by {', '.join(others)}: brokersync import would stop "
                    "and ask for --format; make the sniffs strict (the exact header row or root element)",
                )

    def test_file_sniff_rejects(self) -> None:
        """Rule ``file-sniff-rejects``."""
        rule = "file-sniff-rejects"
        fmt = self._format(rule)
        texts = dict(_NOT_EXPORTS)
        if fmt.name != "generic-csv":
            texts["brokersync's generic CSV"] = _GENERIC
        for number, data in enumerate(self.foreign_samples(), start=1):
            try:
                texts[f"foreign sample #{number}"] = decode_head(data[:SNIFF_BYTES])[0]
            except FileFormatError:
                continue  # binary: the core refuses it before any sniff
        for what, text in texts.items():
            try:
                answer = fmt.sniff(text)
            except Exception as exc:
                raise self._fail(
                    rule, f"sniff() raised {type(exc).__name__}: {exc} on {what}; answer False instead"
                ) from exc
            if answer:
                raise self._fail(
                    rule,
                    f"sniff() claimed {what} ({text[:60]!r}...): look for this export's exact header row or root "
                    "element, not a few common words",
                )

    def test_file_parse_streams(self) -> None:
        """Rule ``file-parse-streams``."""
        rule = "file-parse-streams"
        fmt = self._format(rule)
        sample = self._sample(rule)
        whole = self.reads_whole_file
        big = self.big_sample(self.streaming_bytes)
        if big is None:
            _, lined = self._lined(rule, fmt, sample, "big_sample()")
            big = Lines(sample.data).repeated(lined[0].line or 1, lined[-1].line or 1, self.streaming_bytes)
        parsed = self._parse(fmt, sample, big, first_page_only=True)
        size = len(big)
        if parsed.whole_reads:
            raise self._fail(
                rule,
                "parse() called read() without a size, which reads the whole file into memory; read it in pieces "
                "(source.lines(), source.csv_rows(), an incremental XML parser on source.binary)",
            )
        if parsed.error is not None:
            raise self._fail(
                rule,
                f"parsing a {size:,}-byte file of the sample's rows repeated failed: "
                f"{type(parsed.error).__name__}: {parsed.error}",
            )
        first = parsed.read_at_first_page
        if first is None:
            raise self._fail(rule, f"parse() yielded no page from a {size:,}-byte file of the sample's rows repeated")
        if whole is not None and len(whole.strip()) < 20:
            raise self._fail(rule, f"reads_whole_file must say why in a sentence, not {whole!r}")
        if first > size // 2 and whole is None:
            raise self._fail(
                rule,
                f"the first page came out after reading {first:,} of {size:,} bytes: parse() reads (or collects) the "
                "whole file before yielding; yield a TradePage every ~1,000 records",
            )

    def test_file_records_valid(self) -> None:
        """Rule ``file-records-valid``."""
        rule = "file-records-valid"
        fmt = self._format(rule)
        for sample in self._samples(rule):
            parsed = self._parsed_ok(rule, fmt, sample)
            if parsed.problems:
                raise self._fail(
                    rule,
                    f"the sample {sample.name!r} is a good file, but parse() reported {len(parsed.problems)} "
                    f"problem(s), first {parsed.problems[0]}",
                )
            records = parsed.records
            if not records:
                raise self._fail(rule, f"parse() read no record from the sample {sample.name!r}")
            for record in records:
                why = self._invalid(sample, record)
                if why is not None:
                    where = f" (line {record.line})" if record.line else ""
                    raise self._fail(
                        rule,
                        f"{record.kind} {record.ident!r} of the sample {sample.name!r}{where} is invalid: {why}",
                        record.item,
                    )
            for kind, expected in (
                ("trade", sample.trades),
                ("execution", sample.executions),
                ("cancellation", sample.cancellations),
            ):
                got = sum(1 for r in records if r.kind == kind)
                if expected is not None and got != expected:
                    raise self._fail(rule, f"the sample {sample.name!r} holds {expected} {kind}(s), parse() read {got}")

    def test_file_ids_stable(self) -> None:
        """Rule ``file-ids-stable``."""
        rule = "file-ids-stable"
        fmt = self._format(rule)
        for sample in self._samples(rule):
            first = [r.ident for r in self._parsed_ok(rule, fmt, sample).records]
            second = [r.ident for r in self._parsed_ok(rule, fmt, sample).records]
            if first != second:
                index = next((i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), None)
                shown = f"{first[index]!r} then {second[index]!r}" if index is not None else "a different count"
                raise self._fail(
                    rule,
                    f"parsing the sample {sample.name!r} twice gave different ids ({shown}): a re-import would store "
                    "everything again; derive ids from the row (source.content_id(...)), never from time or chance",
                )
            missing = [i for i, ident in enumerate(first) if not ident]
            if missing:
                raise self._fail(rule, f"record #{missing[0] + 1} of the sample {sample.name!r} has no id")

    def test_file_identical_rows_kept(self) -> None:
        """Rule ``file-identical-rows-kept``."""
        rule = "file-identical-rows-kept"
        fmt = self._format(rule)
        sample = self._sample(rule)
        base, lined = self._lined(rule, fmt, sample, "this test")
        line = next((r.line for r in lined if r.kind != "cancellation"), lined[0].line) or 1
        text = Lines(sample.data)
        row = text.row(line)
        copy = self._parsed_ok(rule, fmt, sample, text.inserted(line, row))
        own = [r for r in base.records if r.line == line]
        if len(copy.records) != len(base.records) + len(own) or copy.problems != base.problems:
            raise self._fail(
                rule,
                f"with an identical copy of line {line} after it, parse() read {len(copy.records)} record(s) instead "
                f"of {len(base.records) + len(own)}"
                + (f" and reported {copy.problems[0]}" if copy.problems else "")
                + ": identical rows were merged or refused, but two identical fills in one second are two fills",
            )
        originals = [r for r in copy.records if r.line == line]
        copies = [r for r in copy.records if r.line == line + 1]
        for original, duplicate in zip(originals, copies, strict=False):
            if original.ident == duplicate.ident and not _carried(original.ident, row):
                raise self._fail(
                    rule,
                    f"line {line} and its identical copy on line {line + 1} got the same id {original.ident!r}, which "
                    "is not the broker's (the row does not carry its numbers): the second fill would be dropped as a "
                    "duplicate; count identical rows (source.content_id(...) does)",
                    duplicate.item,
                )
        lost = sorted({r.ident for r in base.records} - {r.ident for r in copy.records}, key=str)
        if lost:
            raise self._fail(
                rule,
                f"an identical copy of line {line} changed the ids of other rows (e.g. {lost[0]!r}): an overlapping "
                "export would import them twice; ids must depend on the row and its identical predecessors only",
            )

    def test_file_bad_row_reported(self) -> None:
        """Rule ``file-bad-row-reported``."""
        rule = "file-bad-row-reported"
        fmt = self._format(rule)
        sample = self._sample(rule)
        base, lined = self._lined(rule, fmt, sample, "this test")
        line = lined[len(lined) // 2].line or 1
        text = Lines(sample.data)
        row = text.row(line)
        body = row.rstrip("\r\n")
        garbled = self.corrupt_row(body)
        if garbled == body:
            raise self._fail(rule, f"corrupt_row() left line {line} unchanged; return a malformed copy")
        bad = self._parse(fmt, sample, text.replaced(line, garbled + row[len(body) :]))
        if bad.error is not None:
            raise self._fail(
                rule,
                f"a malformed line {line} ({garbled[:80]!r}) failed the whole file: {type(bad.error).__name__}: "
                f"{bad.error}; report the row with source.problem(line, reason) and go on with the next",
            )
        reasons = [p.reason for p in bad.problems if p.line == line]
        records = bad.records
        invalid = [self._invalid(sample, r) for r in records]
        reasons += [why for why in invalid if why and re.search(rf"\bline {line}\b", why)]
        if not reasons:
            found = f"problems at lines {[p.line for p in bad.problems]}" if bad.problems else "no problem reported"
            raise self._fail(
                rule,
                f"a malformed line {line} ({garbled[:80]!r}) was not reported with its line number ({found}); call "
                "source.problem(line, reason) for a row you cannot read, so the user learns which row to fix",
            )
        if len(reasons[0].strip()) < 3:
            raise self._fail(rule, f"the problem reported for line {line} gives no reason ({reasons[0]!r})")
        # Counted, not compared by id: an identical row after the bad one takes its occurrence number.
        # A row that needed the bad one (an expiry of the option it opened) may be reported in turn.
        kept = sum(1 for r, why in zip(records, invalid, strict=True) if why is None and r.line != line)
        others = sum(1 for r in base.records if r.line != line)
        reported = sum(1 for p in bad.problems if p.line != line)
        if kept + reported < others:
            raise self._fail(
                rule,
                f"after the malformed line {line}, {others - kept - reported} of the other {others} record(s) were "
                "lost without a report: a bad row must not stop or skip the rows after it",
            )

    def test_file_junk_refused(self) -> None:
        """Rule ``file-junk-refused``."""
        rule = "file-junk-refused"
        fmt = self._format(rule)
        sample = self._sample(rule)
        files = {what: text.encode("utf-8") for what, text in _NOT_EXPORTS.items()}
        files["binary data"] = _BINARY
        files.update({f"foreign sample #{n}": d for n, d in enumerate(self.foreign_samples(), start=1)})
        for what, data in files.items():
            parsed = self._parse(fmt, sample, data)
            error = parsed.error
            if error is not None and not isinstance(error, FileFormatError):
                raise self._fail(
                    rule,
                    f"reading {what} with --format {fmt.name} raised {type(error).__name__}: {error}; raise "
                    "FileFormatError naming what was expected and what was found",
                )
            if error is None and parsed.records:
                raise self._fail(
                    rule,
                    f"reading {what} with --format {fmt.name} gave {len(parsed.records)} record(s): check the "
                    "header (source.csv_rows(required=...)) and refuse a file that is not this export",
                    parsed.records[0].item,
                )

    def test_file_long_line_refused(self) -> None:
        """Rule ``file-long-line-refused``."""
        rule = "file-long-line-refused"
        fmt = self._format(rule)
        sample = self._sample(rule)
        parsed = self._parse(fmt, sample, long_line_file(sample.data, _LONG_LINE_MB))
        error = parsed.error
        if error is None:
            raise self._fail(
                rule,
                f"a file with a {_LONG_LINE_MB} MB line after its first line was read without error "
                f"({len(parsed.records)} record(s)); read text through source.lines()/csv_rows() (they refuse "
                "it), and cap what an XML parser may buffer",
            )
        if not isinstance(error, FileFormatError):
            raise self._fail(
                rule, f"a {_LONG_LINE_MB} MB line raised {type(error).__name__}: {error}; expected FileFormatError"
            )
        if parsed.bytes_read > LONG_LINE_READ_LIMIT:
            raise self._fail(
                rule,
                f"a {_LONG_LINE_MB} MB line was refused only after reading {parsed.bytes_read:,} bytes: refuse it "
                f"within {LONG_LINE_READ_LIMIT:,} (a line is held in memory while it is read)",
            )

    def test_file_entities_refused(self) -> None:
        """Rule ``file-entities-refused``."""
        rule = "file-entities-refused"
        fmt = self._format(rule)
        sample = self._sample(rule)
        data, is_xml = with_doctype(sample.data)
        parsed = self._parse(fmt, sample, data)
        error = parsed.error
        if error is not None and not isinstance(error, FileFormatError):
            raise self._fail(
                rule,
                f"a DOCTYPE declaring entities raised {type(error).__name__}: {error}; expected FileFormatError",
            )
        if error is None and is_xml:
            raise self._fail(
                rule,
                "an XML file with a DOCTYPE declaring entities (billion laughs, an external entity) was read: refuse "
                "any DTD (defusedxml with forbid_dtd=True), so no entity is ever expanded or fetched",
            )
        expanded = [r for r in parsed.records if "lollollol" in repr(r.item)]
        if expanded:
            raise self._fail(rule, "an entity of the DOCTYPE was expanded into a record", expanded[0].item)


def _carried(ident: str | None, row: str) -> bool:
    """Whether ``ident`` is the broker's: every part of it with a digit is written in the row itself.

    ``"500001-500002"`` (two fill ids of the row) and ``"order-300001"`` are; a digest of the row's
    content (``"acme:3fa9..."``) is not. Identical rows carrying the same broker id are one record.
    """
    parts = [p for p in re.findall(r"[A-Za-z0-9]+", ident or "") if any(c.isdigit() for c in p)]
    return bool(parts) and all(p in row for p in parts)
