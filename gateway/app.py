"""The gateway's ASGI application: routing of prediction requests, health routes and /metrics.

uvicorn imports `create_app` in every worker process. Each process has its own route
table, pooled backend session, counters and control-plane loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import orjson

from gateway import counters, proxy
from gateway.control import (
    PORTAL_TIMEOUT_SECONDS,
    CounterReporter,
    FileRouteSource,
    PortalRouteSource,
    instance_id,
)
from gateway.logs import RepeatedFailureLog, log
from gateway.routes import Backend, Endpoint, RouteTable
from gateway.settings import Settings

_MODELS_PREFIX = "/v2/models/"
_ENDPOINTS_PREFIX = "/endpoints/"
_JSON_HEADERS = [(b"content-type", b"application/json")]


def create_app() -> Gateway:
    """Build the application from GATEWAY_* environment variables (uvicorn factory)."""
    return Gateway(Settings.from_environ())


class Gateway:
    """Raw ASGI application; see "Gateway" in docs/architecture.md for the routes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.table: RouteTable | None = None
        self.counters = counters.RequestCounters()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self._pool: proxy.ConnectionPool | None = None
        self._control_session: aiohttp.ClientSession | None = None
        self._reporter: CounterReporter | None = None
        self._tasks: list[asyncio.Task] = []
        self._backend_failure_logs: dict[tuple[str, str], RepeatedFailureLog] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._handle_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._handle_lifespan(receive, send)

    # Route table

    def apply_table(self, table: RouteTable) -> None:
        """Swap in a new route table in one assignment and log what changed.

        A request that already chose its backend keeps it. A new request sees either
        the old table or the new one, never a mix.
        """
        previous = self.table
        self.table = table
        counters.set_revision(table.revision)

        changes = table.describe_changes(previous)
        old_revision = "none" if previous is None else previous.revision
        log.info(
            "route table revision %s applied (was %s): %s",
            table.revision, old_revision, "; ".join(changes) or "no endpoint changed",
        )

    def build_report(self) -> dict[str, Any]:
        """Build the counter report that the portal receives at POST /api/v1/gateway/reports."""
        table = self.table
        return {
            "instance": instance_id(),
            "revision": None if table is None else table.revision,
            "started_at": self.started_at,
            "counters": self.counters.snapshot(),
        }

    # Lifespan

    async def _handle_lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()

            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:
                    log.exception("gateway worker failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})

            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        """Open the sessions, load the first route table and start the control-plane loops.

        The worker starts even when the portal cannot be reached. It responds with 404
        until a table arrives, and /v2/health/ready responds with 503 meanwhile.
        """
        settings = self.settings
        counters.set_revision(-1)
        self._pool = proxy.ConnectionPool(settings.backend_timeout)
        self._control_session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=PORTAL_TIMEOUT_SECONDS)
        )

        if settings.routes_file is not None:
            source = FileRouteSource(
                settings.routes_file, settings.poll_interval, lambda: self.table, self.apply_table
            )
            source.check_once()
            self._tasks.append(asyncio.create_task(source.run()))
        else:
            assert settings.portal_url is not None and settings.token is not None
            source = PortalRouteSource(
                self._control_session, settings.portal_url, settings.token,
                settings.poll_interval, lambda: self.table, self.apply_table,
            )
            await source.poll_once()
            self._tasks.append(asyncio.create_task(source.run()))

            self._reporter = CounterReporter(
                self._control_session, settings.portal_url, settings.token,
                settings.report_interval, self.build_report,
            )
            self._tasks.append(asyncio.create_task(self._reporter.run()))

        revision = "none" if self.table is None else self.table.revision
        log.info(
            "gateway worker %s started: routes from %s, revision %s",
            instance_id(), settings.describe_source(), revision,
        )

    async def shutdown(self) -> None:
        """Stop the loops, send a last counter report and close the sessions."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

        if self._reporter is not None:
            await self._reporter.report_once()

        if self._pool is not None:
            self._pool.close()
        if self._control_session is not None:
            await self._control_session.close()

        counters.mark_process_dead()
        log.info("gateway worker %s stopped", instance_id())

    # HTTP

    async def _handle_http(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope["path"]

        if path.startswith(_MODELS_PREFIX):
            # Forward the rest of the path as the client encoded it.
            raw_path = (scope.get("raw_path") or path.encode()).decode("latin-1")
            endpoint_name, slash, tail = raw_path[len(_MODELS_PREFIX):].partition("/")
            await self._forward(scope, receive, send, unquote(endpoint_name), slash + tail)
            return

        if path.startswith(_ENDPOINTS_PREFIX):
            endpoint_name, _, tail = path[len(_ENDPOINTS_PREFIX):].partition("/")
            if tail == "invocations":
                await self._forward(scope, receive, send, endpoint_name, None)
                return

        if path == "/v2/health/live":
            await _send_json(send, 200, {"live": True})
        elif path == "/v2/health/ready":
            await self._send_ready(send)
        elif path == "/metrics":
            await self._send_metrics(send)
        else:
            await _send_json(send, 404, {"error": f"no route for {path}"})

    async def _send_ready(self, send: Any) -> None:
        table = self.table
        if table is None:
            await _send_json(send, 503, {"ready": False, "error": "no route table loaded yet"})
        else:
            await _send_json(send, 200, {"ready": True, "revision": table.revision})

    async def _send_metrics(self, send: Any) -> None:
        body, content_type = counters.render_metrics()
        await _send(send, 200, [(b"content-type", content_type.encode())], body)

    async def _forward(
        self, scope: dict, receive: Any, send: Any, endpoint_name: str, model_tail: str | None
    ) -> None:
        """Choose a backend for the endpoint, forward the request and count the outcome.

        `model_tail` is the path after /v2/models/{endpoint}, or None for the MLflow
        /endpoints/{endpoint}/invocations route.
        """
        started = time.perf_counter()

        table = self.table
        endpoint = None if table is None else table.endpoints.get(endpoint_name)
        if endpoint is None:
            counters.record_unrouted("not_found")
            await _send_json(send, 404, {"error": f"endpoint {endpoint_name!r} not found"})
            return

        request_headers: list[tuple[bytes, bytes]] = scope["headers"]
        backend = endpoint.choose(dict(request_headers))
        if backend is None:
            counters.record_unrouted("no_backend")
            message = {"error": f"endpoint {endpoint_name!r} has no backend with traffic"}
            await _send_json(send, 503, message, [(b"x-endpoint", endpoint_name.encode())])
            return

        try:
            body = await _read_body(receive)
        except _ClientDisconnected:
            # No client is left to respond to, and no backend has seen the request.
            return

        forwarded_headers = [
            header for header in request_headers if header[0] not in proxy.REQUEST_HEADERS_NOT_FORWARDED
        ]
        request = _BackendRequest(
            method=scope["method"].encode("ascii"),
            model_tail=model_tail,
            query=scope.get("query_string", b""),
            headers=forwarded_headers,
            body=body,
        )

        backend, outcome = await self._request_with_retry(endpoint, backend, request)
        if isinstance(outcome, proxy.BackendFailure):
            await self._send_failure(send, endpoint_name, backend, outcome, started)
            return

        response = outcome
        self.counters.record(endpoint_name, backend, response.status, time.perf_counter() - started)

        response_headers = response.headers
        response_headers.append((b"content-length", b"%d" % len(response.body)))
        response_headers.append((b"x-model-version", b"%d" % backend.version))
        response_headers.append((b"x-endpoint", endpoint_name.encode()))
        await _send(send, response.status, response_headers, response.body)

    async def _request_with_retry(
        self, endpoint: Endpoint, backend: Backend, request: _BackendRequest
    ) -> tuple[Backend, proxy.Response | proxy.BackendFailure]:
        """Send the request, and once more to a backend from `_choose_retry` if the connection failed early.

        Returns the backend that was tried last, with its response or its failure.
        """
        try:
            return backend, await self._pool.request(backend.url, *request.for_backend(backend))
        except proxy.BackendFailure as failure:
            if not failure.retryable:
                return backend, failure
            first_failure = failure

        failed = backend
        backend = self._choose_retry(endpoint, failed)
        self._log_retry(endpoint.name, failed, backend, first_failure)
        self.counters.record_retry(endpoint.name, failed)

        try:
            return backend, await self._pool.request(backend.url, *request.for_backend(backend))
        except proxy.BackendFailure as failure:
            return backend, failure

    def _choose_retry(self, endpoint: Endpoint, failed: Backend) -> Backend:
        """Pick the retry backend from the newest table, which may have dropped `failed` already."""
        table = self.table
        current = None if table is None else table.endpoints.get(endpoint.name)
        if current is None:
            current = endpoint
        return current.choose_retry(failed)

    def _backend_failure_log(self, endpoint_name: str, backend: Backend) -> RepeatedFailureLog:
        """Return the rate-limited log for one backend, so a dead backend under load logs a few lines."""
        key = (endpoint_name, backend.key)
        failure_log = self._backend_failure_logs.get(key)
        if failure_log is None:
            failure_log = RepeatedFailureLog(
                f"request to endpoint {endpoint_name!r} backend {backend.key} "
                f"(server {backend.server_id}, version {backend.version})"
            )
            self._backend_failure_logs[key] = failure_log
        return failure_log

    def _log_retry(
        self, endpoint_name: str, failed: Backend, retry: Backend, failure: proxy.BackendFailure
    ) -> None:
        self._backend_failure_log(endpoint_name, failed).failure(
            f"{failure}; retrying on {retry.key} (server {retry.server_id}, version {retry.version})"
        )

    async def _send_failure(
        self, send: Any, endpoint_name: str, backend: Backend, failure: proxy.BackendFailure, started: float
    ) -> None:
        self.counters.record(endpoint_name, backend, 0, time.perf_counter() - started)

        status = 504 if failure.timed_out else 502
        self._backend_failure_log(endpoint_name, backend).failure(f"{failure}; responded with {status}")
        message = (
            f"backend {backend.key} (server {backend.server_id}, version {backend.version}) "
            f"of endpoint {endpoint_name!r} did not answer: {failure}"
        )
        await _send_json(send, status, {"error": message}, [(b"x-endpoint", endpoint_name.encode())])


@dataclasses.dataclass(slots=True)
class _BackendRequest:
    """The parts of a client request that go to whichever backend is chosen."""

    method: bytes
    model_tail: str | None
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def for_backend(self, backend: Backend) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]:
        """Return method, percent-encoded target, headers and body for ConnectionPool.request."""
        if self.model_tail is None:
            target = b"/invocations"
        else:
            target = (_MODELS_PREFIX + quote(backend.model_name, safe="") + self.model_tail).encode("latin-1")
        if self.query:
            target += b"?" + self.query
        return self.method, target, self.headers, self.body


class _ClientDisconnected(Exception):
    """The client closed the connection before its request body was complete."""


async def _read_body(receive: Any) -> bytes:
    """Read the whole request body, or raise _ClientDisconnected."""
    # NOTE: the whole request body is kept in memory and the gateway sets no size limit.
    # Put a limit in front of it if clients may send very large batches.
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _ClientDisconnected
    body = message.get("body", b"")
    if not message.get("more_body", False):
        return body

    chunks = [body]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientDisconnected
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def _send(send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(
    send: Any, status: int, payload: dict[str, Any], extra_headers: list[tuple[bytes, bytes]] = ()
) -> None:
    body = orjson.dumps(payload)
    headers = _JSON_HEADERS + [(b"content-length", str(len(body)).encode())] + list(extra_headers)
    await _send(send, status, headers, body)
