"""``brokersync positions``: open positions per account and instrument."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from brokersync._cli._engine import engine_options, json_option, run, to_jsonable
from brokersync._cli._output import echo_json, print_table

if TYPE_CHECKING:
    from brokersync._engine import BrokerSync


@click.command()
@click.option("--connection", "connection_id", help="Only this connection.")
@click.option("--account", "account_id", help="Only this broker account.")
@engine_options
@json_option
def positions(
    connection_id: str | None, account_id: str | None, database_url: str | None, user_id: str, as_json: bool
) -> None:
    """Show open positions: quantity (negative = short), average price, when opened, and their source.

    For brokers whose executions brokersync pairs, positions are the open lots; for brokers that pair
    by themselves, the broker's last reported snapshot.
    """

    async def go(engine: BrokerSync) -> list[Any]:
        return await engine.positions(user_id=user_id, connection_id=connection_id, account=account_id)

    held = run(go, database_url)
    if as_json:
        echo_json([{**to_jsonable(p), "symbol": p.symbol} for p in held])
        return
    print_table(
        "Open positions",
        ["connection", "account", "symbol", "quantity", "average price", "opened at", "source"],
        [
            [
                p.connection_id[:8],
                p.account_id,
                p.symbol,
                str(p.quantity),
                str(p.average_price),
                p.opened_at.isoformat() if p.opened_at else "",
                p.source,
            ]
            for p in held
        ],
    )
