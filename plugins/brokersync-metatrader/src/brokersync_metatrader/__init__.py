"""brokersync plugin for MetaTrader 4 and 5 account statements (file import only)."""

from brokersync_metatrader.files import STATEMENT_HTML, html_rows

__all__ = ["STATEMENT_HTML", "html_rows"]
