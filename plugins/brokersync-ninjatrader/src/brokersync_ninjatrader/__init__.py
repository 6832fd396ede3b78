"""brokersync plugin for NinjaTrader 8 exports (file import only)."""

from brokersync_ninjatrader.files import EXECUTIONS_GRID, TRADE_PERFORMANCE, futures_multiplier

__all__ = ["EXECUTIONS_GRID", "TRADE_PERFORMANCE", "futures_multiplier"]
