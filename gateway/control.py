"""Control plane of one gateway process: route table polling or file watching, and counter reports.

Each uvicorn worker runs these loops for itself, so every process picks up a new table
within one poll interval plus one portal round trip, and reports its own counters.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from gateway.logs import RepeatedFailureLog
from gateway.routes import RouteTable, RouteTableError, parse_route_table

ROUTES_PATH = "/api/v1/gateway/routes"
REPORTS_PATH = "/api/v1/gateway/reports"

# Maximum time for one portal request. A hung portal then delays the next poll by at
# most this long, and the gateway keeps routing with the table it has.
PORTAL_TIMEOUT_SECONDS = 5.0


def instance_id() -> str:
    """Identify this process to the portal as host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class PortalRouteSource:
    """Poll the portal for the route table with If-None-Match, so an unchanged table costs a 304."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        portal_url: str,
        token: str,
        interval: float,
        current: Callable[[], RouteTable | None],
        apply: Callable[[RouteTable], None],
    ) -> None:
        self._session = session
        self._url = portal_url + ROUTES_PATH
        self._headers = {"Authorization": f"Bearer {token}", "X-Gateway-Instance": instance_id()}
        self._interval = interval
        self._current = current
        self._apply = apply
        self._failures = RepeatedFailureLog(f"route table poll of {self._url}")

    async def poll_once(self) -> None:
        """Fetch the table once and apply it if the revision changed, logging a failure instead of raising it."""
        headers = dict(self._headers)
        table = self._current()
        if table is not None:
            headers["If-None-Match"] = f'"{table.revision}"'

        try:
            async with self._session.get(self._url, headers=headers) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self._failures.failure(f"{type(error).__name__}: {error}")
            return

        if status == 304:
            self._failures.success()
            return
        if status != 200:
            self._failures.failure(f"HTTP {status}: {body[:200].decode(errors='replace')}")
            return

        try:
            new_table = parse_route_table(orjson.loads(body))
        except orjson.JSONDecodeError as error:
            self._failures.failure(f"invalid JSON: {error}; keeping revision {_revision(table)}")
            return
        except RouteTableError as error:
            self._failures.failure(f"invalid route table: {error}; keeping revision {_revision(table)}")
            return

        self._failures.success()
        if table is None or new_table.revision != table.revision:
            self._apply(new_table)

    async def run(self) -> None:
        await repeat_every(self._interval, self.poll_once, self._failures)


class FileRouteSource:
    """Load the route table from a JSON file and reload it when its size, mtime or inode changes.

    A writer should replace the file with a rename, because a reload during a partial
    write fails to parse. Such a failure keeps the last good table and is retried on
    the next check.
    """

    def __init__(
        self,
        path: Path,
        interval: float,
        current: Callable[[], RouteTable | None],
        apply: Callable[[RouteTable], None],
    ) -> None:
        self._path = path
        self._interval = interval
        self._current = current
        self._apply = apply
        self._loaded_stat: tuple[int, int, int] | None = None
        self._failures = RepeatedFailureLog(f"route table file {path}")

    def check_once(self) -> None:
        """Reload the file if it changed since the last good load, logging a failure instead of raising it."""
        try:
            stat = self._path.stat()
        except OSError as error:
            self._failures.failure(f"{error}; keeping revision {_revision(self._current())}")
            return

        signature = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if signature == self._loaded_stat:
            return

        try:
            new_table = parse_route_table(orjson.loads(self._path.read_bytes()))
        except (OSError, orjson.JSONDecodeError, RouteTableError) as error:
            self._failures.failure(f"{error}; keeping revision {_revision(self._current())}")
            return

        self._failures.success()
        self._loaded_stat = signature
        self._apply(new_table)

    async def run(self) -> None:
        await repeat_every(self._interval, self.check_once, self._failures)


class CounterReporter:
    """POST this process's cumulative counters to the portal every report interval."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        portal_url: str,
        token: str,
        interval: float,
        build_report: Callable[[], dict[str, Any]],
    ) -> None:
        self._session = session
        self._url = portal_url + REPORTS_PATH
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Gateway-Instance": instance_id(),
        }
        self._interval = interval
        self._build_report = build_report
        self._failures = RepeatedFailureLog(f"counter report to {self._url}")

    async def report_once(self) -> None:
        """Send one report, logging a failure instead of raising it. The next report carries the same totals."""
        body = orjson.dumps(self._build_report())
        try:
            async with self._session.post(self._url, data=body, headers=self._headers) as response:
                reply = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as error:
            self._failures.failure(f"{type(error).__name__}: {error}")
            return

        if not 200 <= status < 300:
            self._failures.failure(f"HTTP {status}: {reply[:200].decode(errors='replace')}")
            return
        self._failures.success()

    async def run(self) -> None:
        await repeat_every(self._interval, self.report_once, self._failures)


async def repeat_every(interval: float, step, failures: RepeatedFailureLog) -> None:
    """Run `step` (plain or async) every `interval` seconds until cancelled.

    An unexpected error is logged and the loop goes on, so a bug in one poll or
    report cannot stop route updates or reports for the rest of the worker's life.
    """
    while True:
        await asyncio.sleep(interval)
        try:
            result = step()
            if inspect.isawaitable(result):
                await result
        except Exception as error:
            failures.failure(f"unexpected {type(error).__name__}: {error}", exc_info=True)


def _revision(table: RouteTable | None) -> str:
    return "none" if table is None else str(table.revision)
