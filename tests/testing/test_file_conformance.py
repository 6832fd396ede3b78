"""The file-format conformance suite: a good format passes every rule, each broken variant fails its own.

The suite runs in-process here (each rule's method called directly); plugins run it through pytest.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from acme_files import FILE_VARIANTS, HEADER, Fills, XmlFills, fills_csv, fills_xml
from brokersync import AuthType, BrokerMetadata, hookimpl
from brokersync.files import FileFormat
from brokersync.testing import FILE_RULES, ConformanceFailure, FileFormatConformance, FileSample

GENERIC_LOOKALIKE = b"Date,Time,Symbol,Quantity,Price,Side\r\n2024-11-05,09:30:12,AAPL,100,225.50,Buy\r\n"


def _suite(make: Callable[[], FileFormat], *, xml: bool = False) -> FileFormatConformance:
    class Suite(FileFormatConformance):
        file_format = make()

        def samples(self) -> list[FileSample]:
            data = fills_xml() if xml else fills_csv()
            return [FileSample(data=data, name="fills.xml" if xml else "fills.csv", executions=5)]

        def foreign_samples(self) -> list[bytes]:
            return [GENERIC_LOOKALIKE, fills_xml() if not xml else fills_csv()]

    return Suite()


def _check(suite: FileFormatConformance, rule: str) -> str | None:
    try:
        getattr(suite, f"test_{rule.replace('-', '_')}")()
    except ConformanceFailure as exc:
        failure = exc
    else:
        return None
    assert failure.rule == rule, f"rule {rule!r} raised a failure of {failure.rule!r}: {failure}"
    return str(failure)


def test_every_file_rule_has_its_own_test() -> None:
    methods = {n.removeprefix("test_").replace("_", "-") for n in dir(FileFormatConformance) if n.startswith("test_")}
    assert methods == set(FILE_RULES)


@pytest.mark.parametrize("rule", list(FILE_RULES))
@pytest.mark.parametrize("xml", [False, True], ids=["csv", "xml"])
def test_the_good_formats_pass_every_rule(rule: str, xml: bool) -> None:
    make = XmlFills().format if xml else Fills().format
    assert _check(_suite(make, xml=xml), rule) is None


@pytest.mark.parametrize(("variant", "rule"), [(n, r) for n, (_, r) in FILE_VARIANTS.items()], ids=list(FILE_VARIANTS))
def test_a_broken_format_fails_the_rule_it_breaks(variant: str, rule: str) -> None:
    make, _ = FILE_VARIANTS[variant]
    message = _check(_suite(make, xml=variant.startswith("Xml")), rule)
    assert message is not None, f"{variant} passed rule {rule!r} although it breaks it"
    assert f"broker 'brokersync' breaks conformance rule '{rule}'" in message
    assert "format '" in message


def test_every_file_rule_is_shown_failing_by_some_variant() -> None:
    assert {rule for _, rule in FILE_VARIANTS.values()} == set(FILE_RULES)


class _LooseFills(Fills):
    def sniff(self, head: str) -> bool:
        return "Symbol" in head


class TwoFormats:
    """A file-only plugin with two formats whose sniffs both claim the fills CSV."""

    @hookimpl
    def broker_metadata(self) -> BrokerMetadata:
        return BrokerMetadata(
            key="acmefiles",
            name="Acme Files",
            description="Acme exports",
            auth_type=AuthType.FILE,
            credential_fields=(),
            environments={},
            docs_url="https://acme-broker.test/docs/exports",
        )

    @hookimpl
    def file_formats(self) -> list[FileFormat]:
        return [Fills().format(), _LooseFills(name="acme-any").format()]


class _Plugin(FileFormatConformance):
    broker_key = "acmefiles"
    plugin = TwoFormats()

    def samples(self) -> list[FileSample]:
        return [FileSample(data=fills_csv(), name="fills.csv")]


def test_a_sample_another_format_of_the_plugin_claims_is_ambiguous() -> None:
    class Suite(_Plugin):
        format_name = "acme-fills"

    message = _check(Suite(), "file-sniff-accepts")
    assert message is not None and "is also claimed by acme-any: brokersync import would stop" in message
    assert "broker 'acmefiles'" in message


def test_a_format_the_plugin_does_not_declare_is_named() -> None:
    class Suite(_Plugin):
        format_name = "acme-statement"

    message = _check(Suite(), "file-format-declared")
    assert message is not None and "returns no format named 'acme-statement'" in message


def test_an_overlap_with_the_generic_csv_is_not_the_formats_fault() -> None:
    # A broker export with the generic layout's columns: the generic sniff claims it too, and the
    # format's author cannot change that (the core decides how import resolves it).
    class Lookalike(Fills):
        def sniff(self, head: str) -> bool:
            return head.lstrip("\ufeff").startswith("Date,Time,Symbol,Quantity,Price,Side")

    class Suite(FileFormatConformance):
        file_format = Lookalike(name="acme-lookalike").format()

        def samples(self) -> list[FileSample]:
            return [FileSample(data=GENERIC_LOOKALIKE, name="lookalike.csv")]

    assert _check(Suite(), "file-sniff-accepts") is None


def test_a_format_that_reads_the_whole_file_must_say_why() -> None:
    make, _ = FILE_VARIANTS["OnePage"]

    class Honest(FileFormatConformance):
        file_format = make()
        reads_whole_file = "the export lists fills newest first and pairs need them oldest first"

        def samples(self) -> list[FileSample]:
            return [FileSample(data=fills_csv(), name="fills.csv")]

    assert _check(Honest(), "file-parse-streams") is None
    Honest.reads_whole_file = "yes"
    message = _check(Honest(), "file-parse-streams")
    assert message is not None and "must say why" in message
    # It still must read in pieces.
    Honest.file_format = FILE_VARIANTS["ReadsWholeFile"][0]()
    Honest.reads_whole_file = "the export lists fills newest first and pairs need them oldest first"
    message = _check(Honest(), "file-parse-streams")
    assert message is not None and "called read() without a size" in message


def test_messages_say_what_to_fix() -> None:
    expectations = {
        ("ReadsWholeFile", "file-parse-streams"): "called read() without a size",
        ("OnePage", "file-parse-streams"): "the first page came out after reading",
        ("FloatPrices", "file-records-valid"): "float",
        ("NaiveTimes", "file-records-valid"): "is invalid",
        ("RandomIds", "file-ids-stable"): "twice gave different ids",
        ("ContentOnlyIds", "file-identical-rows-kept"): "got the same id",
        ("DropsRepeatedRows", "file-identical-rows-kept"): "identical rows were merged or refused",
        ("StopsAtBadRow", "file-bad-row-reported"): "failed the whole file",
        ("SkipsBadRowSilently", "file-bad-row-reported"): "was not reported with its line number",
        ("NoHeaderCheck", "file-junk-refused"): "raised KeyError",
        ("OwnLineReader", "file-long-line-refused"): "was read without error",
        ("XmlAcceptsDoctype", "file-entities-refused"): "refuse any DTD",
        ("LooseSniff", "file-sniff-rejects"): "sniff() claimed",
        ("SniffRaises", "file-sniff-rejects"): "sniff() raised IndexError",
        ("StrictSniff", "file-sniff-accepts"): "sniff() answered False",
        ("BadName", "file-format-declared"): "is not a short lowercase name",
    }
    for (variant, rule), phrase in expectations.items():
        make, _ = FILE_VARIANTS[variant]
        message = _check(_suite(make, xml=variant.startswith("Xml")), rule)
        assert message is not None and phrase in message, (variant, message)


def test_a_header_only_file_is_not_a_sample() -> None:
    class Suite(FileFormatConformance):
        file_format = Fills().format()

        def samples(self) -> list[FileSample]:
            return [FileSample(data=fills_csv(rows=[]), name="empty.csv")]

    message = _check(Suite(), "file-records-valid")
    assert message is not None and "read no record from the sample 'empty.csv'" in message
    assert HEADER.split(",")[0] == "Time"
