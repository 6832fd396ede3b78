"""Overhead of the core HTTP client (limiter + circuit + retry + mapping + log) over bare httpx.

A loopback HTTP/1.1 server runs in a separate process; in this process the same number of
sequential GETs go through a bare ``httpx.AsyncClient`` (the baseline) and through the core's
``BrokerHttpClient`` (memory limiter with room to spare, circuit breaker, retry policy), with
brokersync's logging off (the library default) and on (to a sink that drops the records).
Repetitions run back to back (bare, core, core with logging) and the medians are kept.

    python benchmarks/bench_http_overhead.py [--requests 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RESPONSE = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


async def serve() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


async def measure(base_url: str, requests: int, repeat: int) -> dict[str, float]:
    import brokersync
    import httpx
    from brokersync import BrokerMetadata, CredentialField, RateLimit, Resilience, hookimpl
    from loguru import logger

    class Bench:
        @hookimpl
        def broker_metadata(self) -> BrokerMetadata:
            return BrokerMetadata(
                key="bench",
                name="Bench",
                auth_type="token",
                credential_fields=[CredentialField(name="token", secret=True)],
                environments={"live": base_url},
                rate_limits=[RateLimit(max_requests=10**9, window_seconds=1)],
            )

        @hookimpl
        async def authenticate(self, ctx, credentials):  # type: ignore[no-untyped-def]
            return brokersync.AuthResult(access_token="x" * 8)

        @hookimpl
        async def get_accounts(self, ctx, auth):  # type: ignore[no-untyped-def]
            return []

        @hookimpl
        async def get_trades(self, ctx, auth, account, since, cursor):  # type: ignore[no-untyped-def]
            return []

    registry = brokersync.BrokerRegistry(entry_points=False)
    registry.register("bench", Bench())
    broker = registry.get("bench")
    resilience = Resilience()
    core = resilience.client_for(broker)
    bare = httpx.AsyncClient(base_url=base_url)
    headers = {"Authorization": "Bearer bench-token-123"}

    async def run(client: object) -> float:
        get = client.get  # type: ignore[attr-defined]
        started = time.perf_counter()
        for _ in range(requests):
            await get("/ping", headers=headers)
        return (time.perf_counter() - started) / requests

    for client in (bare, core):  # warm up
        for _ in range(200):
            await client.get("/ping", headers=headers)
    runs: dict[str, list[float]] = {"bare": [], "core": [], "core_logging": []}
    for _ in range(repeat):
        # Back-to-back triples: load from other work on a shared machine hits all three alike.
        runs["bare"].append(await run(bare))
        runs["core"].append(await run(core))
        logger.enable("brokersync")
        sink = logger.add(lambda _message: None, level="INFO")
        runs["core_logging"].append(await run(core))
        logger.remove(sink)
        logger.disable("brokersync")
    result = {name: statistics.median(values) for name, values in runs.items()}
    result["core_ratio"] = statistics.median(c / b for c, b in zip(runs["core"], runs["bare"], strict=True))
    result["logging_ratio"] = statistics.median(c / b for c, b in zip(runs["core_logging"], runs["bare"], strict=True))
    assert core.metrics.requests >= requests * repeat * 2
    await bare.aclose()
    await core.aclose()
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        asyncio.run(serve())
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        result = asyncio.run(measure(f"http://127.0.0.1:{port}/v1", args.requests, args.repeat))
    finally:
        server.terminate()
        server.wait()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    bare, core, logged = (result[name] * 1e6 for name in ("bare", "core", "core_logging"))
    print(f"medians of {args.repeat} back-to-back runs of {args.requests} sequential GETs each:")
    print(f"bare httpx:              {bare:7.0f} us/request (baseline)")
    print(
        f"core client:             {core:7.0f} us/request, {result['core_ratio']:.2f}x baseline (+{core - bare:.0f} us)"
    )
    print(
        f"core client, logging on: {logged:7.0f} us/request, {result['logging_ratio']:.2f}x baseline "
        f"(+{logged - bare:.0f} us)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
