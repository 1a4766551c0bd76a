"""Real HTTP servers on 127.0.0.1 for the gateway tests: model server stand-ins, a portal, the gateway.

The backends and the portal run on aiohttp in background threads of the test process.
The gateway runs as `python -m gateway` in a subprocess, as in production.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiohttp import web

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "test-token-3f9a1c"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _ServerThread:
    """Run an aiohttp application in its own event loop on a background thread."""

    def __init__(self, app: web.Application, port: int = 0) -> None:
        self._app = app
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._runner = web.AppRunner(self._app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Stop accepting, finish requests in flight and close every connection."""
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=15)
            self._runner = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


class Backend(_ServerThread):
    """A model server stand-in that reports who it is and echoes the request it got.

    The request header x-test-status sets the response status, and x-test-delay
    (seconds) delays the response.
    """

    def __init__(self, name: str, version: int, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        super().__init__(app, port)
        self.name = name
        self.version = version
        self.requests = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        body = await request.read()

        delay = float(request.headers.get("x-test-delay", "0"))
        if delay:
            await asyncio.sleep(delay)

        payload = {
            "backend": self.name,
            "version": self.version,
            "method": request.method,
            "path": request.path,
            "raw_path": request.raw_path,
            "body": body.decode("latin-1"),
            "headers": {str(name).lower(): value for name, value in request.headers.items()},
        }
        status = int(request.headers.get("x-test-status", "200"))
        return web.Response(
            status=status, body=orjson.dumps(payload),
            content_type="application/json", headers={"x-served-by": self.name},
        )


class ClosingBackend:
    """A backend that responds to the first request on each connection and closes the connection at the second.

    It plays a model server that closed a keep-alive connection just as the gateway
    sent the next request on it: the gateway sees the connection close before any
    response arrives.
    """

    def __init__(self, name: str, version: int) -> None:
        self.name = name
        self.version = version
        self.port = 0
        self.answered = 0
        self.closed_unanswered = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests_on_connection = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                requests_on_connection += 1
                if requests_on_connection > 1:
                    self.closed_unanswered += 1
                    return

                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)

                body = orjson.dumps({"backend": self.name, "version": self.version})
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
                )
                await writer.drain()
                self.answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


class FakePortal(_ServerThread):
    """Serves GET /api/v1/gateway/routes and POST /api/v1/gateway/reports as the portal contract specifies.

    It records when each gateway instance first received each revision, and every report.
    """

    def __init__(self, table: dict[str, Any]) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/gateway/routes", self._routes)
        app.router.add_post("/api/v1/gateway/reports", self._reports)
        super().__init__(app)
        self._lock = threading.Lock()
        self._table = table
        self.failing = False
        self.received: dict[str, dict[int, float]] = {}
        self.reports: list[tuple[float, dict[str, Any]]] = []
        self.unauthorized = 0

    def set_table(self, table: dict[str, Any]) -> float:
        """Publish a new table and return the monotonic time at which it was published."""
        with self._lock:
            self._table = table
            return time.monotonic()

    def instances(self) -> set[str]:
        with self._lock:
            return set(self.received)

    def first_received(self, instance: str, revision: int) -> float | None:
        with self._lock:
            return self.received.get(instance, {}).get(revision)

    def latest_reports(self) -> dict[str, dict[str, Any]]:
        """Return the last report of each gateway instance."""
        with self._lock:
            latest = {}
            for _, report in self.reports:
                latest[report["instance"]] = report
            return latest

    def first_report_with(self, instance: str, revision: int) -> float | None:
        """Return the monotonic time of the instance's first report that carries `revision`."""
        with self._lock:
            for received_at, report in self.reports:
                if report["instance"] == instance and report["revision"] == revision:
                    return received_at
            return None

    def _authorized(self, request: web.Request) -> bool:
        if request.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self.unauthorized += 1
        return False

    async def _routes(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "invalid token"}, status=401)
        if self.failing:
            return web.json_response({"detail": "portal failure for the test"}, status=500)

        with self._lock:
            table = self._table
            etag = f'"{table["revision"]}"'
            if request.headers.get("If-None-Match") == etag:
                return web.Response(status=304, headers={"ETag": etag})

            instance = request.headers.get("X-Gateway-Instance", "unknown")
            self.received.setdefault(instance, {}).setdefault(table["revision"], time.monotonic())

        return web.Response(body=orjson.dumps(table), content_type="application/json", headers={"ETag": etag})

    async def _reports(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"detail": "invalid token"}, status=401)
        report = orjson.loads(await request.read())
        with self._lock:
            self.reports.append((time.monotonic(), report))
        return web.Response(status=204)


class GatewayProcess:
    """`python -m gateway` in a subprocess on a free port, stopped by its PID."""

    def __init__(self, *options: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(prefix="gateway-test-", suffix=".log", delete=False)
        command = [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(self.port), *options]
        self.process = subprocess.Popen(
            command, cwd=REPOSITORY_ROOT, stdout=self._log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )

    def wait_ready(self, timeout: float = 15.0) -> None:
        """Wait until /v2/health/ready of the gateway returns 200, or raise with the gateway log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/v2/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gateway not ready after {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def stop(self) -> int:
        """Send SIGTERM to the gateway, wait for it to exit (killing it after 15 s) and delete its log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
        return self.process.returncode


def backend_entry(backend: Backend | ClosingBackend, server_id: int, weight: float, role: str = "stable",
                  key: str | None = None, model_name: str = "iris-model") -> dict[str, Any]:
    """Build one backend of a route table for a running test server."""
    return {
        "key": key or f"s{server_id}",
        "server_id": server_id,
        "model": "iris-classifier",
        "version": backend.version,
        "url": backend.url,
        "model_name": model_name,
        "weight": weight,
        "role": role,
    }


def route_table(revision: int, endpoints: dict[str, list[dict[str, Any]]], **extra: Any) -> dict[str, Any]:
    """Build a route table with the given backends per endpoint; `extra` goes into every endpoint."""
    return {
        "revision": revision,
        "endpoints": {name: {"backends": backends, **extra} for name, backends in endpoints.items()},
    }


def write_table(path: Path, table: dict[str, Any]) -> None:
    """Replace the routes file with a rename, as a deploy tool should."""
    temporary = path.with_suffix(".tmp")
    temporary.write_bytes(orjson.dumps(table))
    os.replace(temporary, path)


def wait_until(condition: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """Poll `condition` until it returns a true value, and return that value, or None at the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None
