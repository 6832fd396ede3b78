"""``brokersync plugins`` and ``brokersync brokers``: what is installed and what each broker offers."""

from __future__ import annotations

from typing import Any

import click

from brokersync._cli._output import echo_json, fail, print_table


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--check", is_flag=True, help="Exit with status 1 if any plugin failed to load.")
def plugins(as_json: bool, check: bool) -> None:
    """List installed broker plugins: distribution, version, brokers, hooks, and load errors."""
    from brokersync import list_plugins

    infos = list_plugins()
    if as_json:
        echo_json(
            [
                {
                    "distribution": info.distribution,
                    "version": info.version,
                    "brokers": list(info.brokers),
                    "hooks": list(info.hooks),
                    "errors": [{"broker": f.key, "error": f.error} for f in info.failures],
                }
                for info in infos
            ]
        )
    elif not infos:
        click.echo("No broker plugins installed. Install one, e.g. `pip install brokersync-sim`.")
    else:
        print_table(
            "Broker plugins",
            ["distribution", "version", "brokers", "hooks", "status"],
            (
                (
                    info.distribution,
                    info.version,
                    ", ".join(info.brokers),
                    ", ".join(info.hooks),
                    f"{len(info.failures)} failed" if info.failures else "ok",
                )
                for info in infos
            ),
        )
        failures = [f for info in infos for f in info.failures]
        if failures:
            print_table(
                "Plugins that failed to load (every other plugin still works)",
                ["broker", "distribution", "error"],
                ((f.key, f"{f.distribution} {f.version or ''}".strip(), f.error) for f in failures),
                styles={"error": "red"},
            )
    if check and any(info.failures for info in infos):
        raise SystemExit(1)


def _metadata_dict(meta: Any) -> dict[str, Any]:
    from brokersync._converters import strict_converter

    data: dict[str, Any] = strict_converter().unstructure(meta)
    return data


@click.command()
@click.argument("key", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def brokers(key: str | None, as_json: bool) -> None:
    """Show each broker's metadata (or one broker's, given its KEY)."""
    from brokersync import ConfigurationError, get_broker_metadata, list_brokers

    try:
        metas = [get_broker_metadata(key)] if key else list_brokers()
    except ConfigurationError as exc:
        fail(str(exc), code=2)
        return
    if as_json:
        echo_json([_metadata_dict(m) for m in metas])
        return
    if not metas:
        click.echo("No brokers available. Install a broker plugin, e.g. `pip install brokersync-sim`.")
        return
    print_table(
        "Brokers",
        ["key", "name", "auth", "credentials", "environments", "capabilities", "rate limits", "plugin API"],
        (
            (
                m.key,
                m.name,
                m.auth_type.value,
                ", ".join(f"{f.name}{' (secret)' if f.secret else ''}" for f in m.credential_fields),
                ", ".join(m.environments),
                f"refresh={m.capabilities.refresh_token} cursor={m.capabilities.cursor.value}"
                + (f" history={m.capabilities.max_history_days}d" if m.capabilities.max_history_days else ""),
                ", ".join(f"{r.max_requests}/{r.window_seconds:g}s {r.scope}:{r.name}" for r in m.rate_limits),
                m.plugin_api,
            )
            for m in metas
        ),
    )
