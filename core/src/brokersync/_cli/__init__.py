"""The ``brokersync`` command line: a thin layer over the public API.

Commands live in their own modules and load only when invoked, so ``brokersync --help`` and
``brokersync plugins`` start fast. Exit codes: 0 ok, 1 failures (a sync or check failed), 2 usage or
configuration errors (bad options, unknown connection, unusable data directory or keys), 130 Ctrl-C.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from brokersync._version import __version__

__all__ = ["main"]

#: command name -> "module:attribute" of its click command. Add a command by adding a line here.
COMMANDS: dict[str, str] = {
    "plugins": "brokersync._cli._plugins:plugins",
    "brokers": "brokersync._cli._plugins:brokers",
    "connect": "brokersync._cli._connections:connect",
    "reconnect": "brokersync._cli._connections:reconnect",
    "disconnect": "brokersync._cli._connections:disconnect",
    "connections": "brokersync._cli._connections:connections",
    "sync": "brokersync._cli._syncing:sync",
    "trades": "brokersync._cli._syncing:trades",
    "runs": "brokersync._cli._syncing:runs",
    "cancellations": "brokersync._cli._syncing:cancellations",
    "import": "brokersync._cli._import:import_",
    "positions": "brokersync._cli._positions:positions",
    "status": "brokersync._cli._syncing:status",
    "doctor": "brokersync._cli._doctor:doctor",
    "unlock": "brokersync._cli._unlock:unlock",
    "stats": "brokersync._cli._stats:stats",
    "keys": "brokersync._cli._admin:keys",
    "db": "brokersync._cli._admin:db",
    "scheduler": "brokersync._cli._scheduler:scheduler",
    "demo": "brokersync._cli._demo:demo",
    "worker": "brokersync._cli._worker:worker",
    "enqueue": "brokersync._cli._worker:enqueue",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attribute = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attribute)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="brokersync")
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
    default="WARNING",
    show_default=True,
    help="Log level for brokersync's logs on stderr.",
)
@click.option("--log-json", is_flag=True, help="Write logs as one JSON object per line.")
@click.pass_context
def cli(ctx: click.Context, log_level: str, log_json: bool) -> None:
    """Sync every trade from every broker into one normalized, deduplicated store."""
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level.upper()
    ctx.obj["log_json"] = log_json
    # Always on: warnings (a new key file to back up, a sync interrupted) show at the default level.
    from brokersync._log import enable_logging

    # At the default level a failed request's log line is left out: the error printed says what the broker
    # answered (`--log-level WARNING` or lower shows every request attempt).
    defaulted = ctx.get_parameter_source("log_level") is click.core.ParameterSource.DEFAULT
    enable_logging(level=log_level.upper(), json=log_json, requests=not (defaulted and not log_json))


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; configuration errors exit with status 2 and a one-line message."""
    from brokersync.errors import ConfigurationError

    try:
        return cli.main(args=argv, prog_name="brokersync", standalone_mode=True)
    except ConfigurationError as exc:  # pragma: no cover - commands translate these themselves
        click.echo(f"Error: {exc}", err=True)
        sys.exit(2)
