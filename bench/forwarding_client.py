"""Compare HTTP clients for the gateway's forwarding: `python bench/forwarding_client.py`.

Starts bench/backend.py on 127.0.0.1 and sends POST /invocations through three clients
in one process: an aiohttp ClientSession set up as the gateway would use it, the gateway's
ConnectionPool, and the same pool with an asyncio.timeout timer around every request.
Rounds alternate the clients so that load from other processes spreads over all of them.
Prints the median over the rounds of the time per sequential request and of the
throughput with 64 concurrent requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop
import yarl

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.gateway import DEFAULT_BODY, free_port, stop_process, wait_for_http  # noqa: E402
from gateway.proxy import ConnectionPool  # noqa: E402

HEADERS = [(b"content-type", b"application/json")]
Client = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


async def aiohttp_client(url: str) -> Client:
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=1024, keepalive_timeout=4.0),
        timeout=aiohttp.ClientTimeout(total=30),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
    )
    target = yarl.URL(url + "/invocations", encoded=True)

    async def send() -> None:
        async with session.post(target, data=DEFAULT_BODY, headers=[("content-type", "application/json")]) as response:
            await response.read()

    return send, session.close


async def pool_client(url: str) -> Client:
    pool = ConnectionPool(30)

    async def send() -> None:
        await pool.request(url, b"POST", b"/invocations", HEADERS, DEFAULT_BODY)

    async def close() -> None:
        pool.close()

    return send, close


async def pool_with_timer_client(url: str) -> Client:
    pool = ConnectionPool(30)

    async def send() -> None:
        async with asyncio.timeout(30):
            await pool.request(url, b"POST", b"/invocations", HEADERS, DEFAULT_BODY)

    async def close() -> None:
        pool.close()

    return send, close


async def measure(make_client: Callable[[str], Awaitable[Client]], url: str, requests: int) -> tuple[float, float]:
    """Return microseconds per sequential request and requests/s with 64 concurrent requests."""
    send, close = await make_client(url)
    for _ in range(300):
        await send()

    started = time.perf_counter()
    for _ in range(requests):
        await send()
    sequential_us = (time.perf_counter() - started) / requests * 1e6

    async def send_many(count: int) -> None:
        for _ in range(count):
            await send()

    per_task = max(1, requests // 64)
    started = time.perf_counter()
    await asyncio.gather(*(send_many(per_task) for _ in range(64)))
    throughput = 64 * per_task / (time.perf_counter() - started)

    await close()
    return sequential_us, throughput


async def compare(url: str, rounds: int, requests: int) -> None:
    clients = {
        "aiohttp ClientSession": aiohttp_client,
        "gateway ConnectionPool": pool_client,
        "ConnectionPool + asyncio.timeout": pool_with_timer_client,
    }
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, make_client in clients.items():
            results[name].append(await measure(make_client, url, requests))

    print("| client | us per sequential request | requests/s at 64 concurrent |")
    print("| --- | ---: | ---: |")
    for name, rows in results.items():
        sequential = statistics.median(row[0] for row in rows)
        throughput = statistics.median(row[1] for row in rows)
        print(f"| {name} | {sequential:.0f} | {throughput:,.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds over all clients (default 5)")
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement (default 3000)")
    options = parser.parse_args()

    port = free_port()
    backend = subprocess.Popen(
        [sys.executable, str(REPOSITORY_ROOT / "bench" / "backend.py"), "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(url + "/invocations", DEFAULT_BODY)
        uvloop.run(compare(url, options.rounds, options.requests))
    finally:
        stop_process(backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
