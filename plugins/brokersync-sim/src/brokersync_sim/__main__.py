"""``brokersync-sim serve``: run the fake broker API on a loopback port for CLI users."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def _number(kind: Callable[[str], float], low: float, high: float | None, what: str) -> Callable[[str], float]:
    """An argparse type: ``kind(text)`` within ``low..high``, else a usage error naming the range."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if value < low or (high is not None and value > high):
            bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{text} must be {bounds}")
        return value

    return parse


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and serve the sim API until interrupted (exit 2 on bad arguments or a busy port)."""
    parser = argparse.ArgumentParser(prog="brokersync-sim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the fake broker API on a loopback port")

    def integer(low: int, high: int | None = None) -> Callable[[str], float]:
        return _number(int, low, high, "a whole number")

    rate = _number(float, 0, 1, "a number between 0 and 1")
    seconds = _number(float, 0, None, "a number of seconds")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=integer(0, 65535), default=8765, help="0 picks a free port (default: 8765)")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--accounts", type=integer(1), default=3)
    serve.add_argument("--trades", type=integer(0), default=1000, help="trades per account")
    serve.add_argument("--fault-rate", type=rate, default=0.0, help="share of requests that fail (0..1)")
    serve.add_argument("--malformed-rate", type=rate, default=0.0, help="share of malformed records (0..1)")
    serve.add_argument("--cancel-rate", type=rate, default=0.0, help="share of trades busted per complete listing")
    serve.add_argument("--latency", type=seconds, default=0.0, help="seconds per request")
    args = parser.parse_args(argv)

    from brokersync_sim.api import SimAPI
    from brokersync_sim.server import SimServer

    api = SimAPI(
        seed=args.seed,
        accounts=int(args.accounts),
        trades_per_account=int(args.trades),
        fault_rate=args.fault_rate,
        malformed_rate=args.malformed_rate,
        cancel_rate=args.cancel_rate,
        latency=args.latency,
    )
    try:
        server = SimServer(api, host=args.host, port=int(args.port))
    except OSError as exc:
        parser.exit(
            2,
            f"brokersync-sim: error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            "(another server there? pick another --port, or 0 for a free one)\n",
        )
    print(f"sim broker API on {server.base_url} (password: {api.password}); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
