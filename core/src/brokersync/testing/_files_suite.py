"""The file-format conformance suite: a base class whose test methods check one file rule each."""

from __future__ import annotations

from brokersync.testing._files_checks import FileChecks

__all__ = ["FileFormatConformance"]


class FileFormatConformance(FileChecks):
    """Subclass this in a plugin's tests (name the subclass ``Test...``) to check one export file format.

    Each ``test_file_*`` method checks one rule of :data:`brokersync.testing.FILE_RULES` and fails
    with a :class:`~brokersync.testing.ConformanceFailure` naming the rule, the broker, the format
    and what to fix. The format is parsed as ``brokersync import --format NAME`` parses it (through
    :class:`~brokersync.files.FileSource`), from the samples and from files the suite derives from
    them: a row copied (``file-identical-rows-kept``), garbled (``file-bad-row-reported``),
    repeated to megabytes (``file-parse-streams``), a 50 MB line, a DOCTYPE with entities, junk.
    The derived files find a record's row through ``raw["_line"]``.

    Example::

        from brokersync.testing import FileFormatConformance, FileSample

        class TestAcmeFillsFile(FileFormatConformance):
            broker_key = "acme"
            format_name = "acme-fills"

            def samples(self) -> list[FileSample]:
                return [FileSample(data=fills_csv(), name="fills.csv", timezone="America/New_York", executions=4)]

            def foreign_samples(self) -> list[bytes]:
                return [statement_csv()]  # the plugin's other export

    Attributes:
        broker_key: The broker whose plugin declares the format (its ``file_formats`` hook).
        plugin: The plugin object; ``None`` loads it through its entry point.
        format_name: The format's name (what ``--format`` takes).
        file_format: A :class:`~brokersync.files.FileFormat` to check without a plugin (with
            ``broker_key = None``), e.g. brokersync's own generic CSV.
        streaming_bytes: The size of the file ``file-parse-streams`` builds (default 4 MiB).
        reads_whole_file: Why the format cannot yield a page before the end of the file (e.g. an
            export listed newest first whose later rows decide earlier ones); ``None`` (the default)
            means it streams. A format that sets it is still checked to read in pieces.

    Methods to override: :meth:`samples` (required), :meth:`foreign_samples`, :meth:`corrupt_row`
    (how a row is garbled; default: its digits become ``x``) and :meth:`big_sample` (for formats
    whose rows cannot simply be repeated).
    """
