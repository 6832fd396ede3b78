"""``brokersync-sim serve``: run the fake broker API on a loopback port for CLI users."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments and serve the sim API until interrupted."""
    parser = argparse.ArgumentParser(prog="brokersync-sim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the fake broker API on a loopback port")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port (default: 8765)")
    serve.add_argument("--seed", type=int, default=0)
    serve.add_argument("--accounts", type=int, default=3)
    serve.add_argument("--trades", type=int, default=1000, help="trades per account")
    serve.add_argument("--fault-rate", type=float, default=0.0)
    serve.add_argument("--malformed-rate", type=float, default=0.0)
    serve.add_argument("--cancel-rate", type=float, default=0.0, help="share of trades busted per complete listing")
    serve.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    args = parser.parse_args(argv)

    from brokersync_sim.api import SimAPI
    from brokersync_sim.server import SimServer

    api = SimAPI(
        seed=args.seed,
        accounts=args.accounts,
        trades_per_account=args.trades,
        fault_rate=args.fault_rate,
        malformed_rate=args.malformed_rate,
        cancel_rate=args.cancel_rate,
        latency=args.latency,
    )
    server = SimServer(api, host=args.host, port=args.port)
    print(f"sim broker API on {server.base_url} (password: {api.password}); Ctrl-C stops it", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
