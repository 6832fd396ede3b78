"""brokersync plugin for Charles Schwab / thinkorswim exports (file import only for now)."""

from brokersync_schwab.files import THINKORSWIM_STATEMENT, TRANSACTIONS_CSV, option_instrument

__all__ = ["THINKORSWIM_STATEMENT", "TRANSACTIONS_CSV", "option_instrument"]
