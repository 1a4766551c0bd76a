"""Forwarding of one request to one backend through the process's pooled aiohttp session.

Bodies pass through as bytes in both directions: the gateway never decodes a prediction
request or response, and aiohttp's automatic decompression is off.
"""

from __future__ import annotations

import aiohttp
import yarl

# Hop-by-hop headers (RFC 9110 section 7.6.1) apply to one connection and are not
# forwarded. Host and Content-Length are set again by aiohttp for the backend request.
# uvicorn sends the 100 Continue for an Expect header itself when the application reads the body.
REQUEST_HEADERS_NOT_FORWARDED = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization", b"te", b"trailer",
    b"transfer-encoding", b"upgrade", b"host", b"content-length", b"expect",
})

# The gateway sets Content-Length, Date (through uvicorn) and its own x- headers on
# every response, so the backend's copies would be duplicates.
RESPONSE_HEADERS_NOT_FORWARDED = frozenset({
    b"connection", b"keep-alive", b"proxy-authenticate", b"trailer", b"transfer-encoding", b"upgrade",
    b"content-length", b"date", b"server", b"x-model-version", b"x-endpoint",
})

# Seconds an idle pooled connection is kept. uvicorn, which the model server runs on,
# closes idle connections after 5 s by default, and a pool that kept them longer would
# more often send a request on a connection that the server is just closing.
KEEPALIVE_SECONDS = 4.0

# NOTE: a fixed cap on open connections per process. Requests beyond it wait for a
# free connection, and that wait counts against --backend-timeout.
MAX_CONNECTIONS = 1024


class BackendFailure(Exception):
    """No complete response came from the backend.

    `retryable` is true when the connection failed before any response arrived
    (connection refused, or a pooled keep-alive connection that the server closed), so
    sending the request again cannot duplicate a response that the client already got.
    """

    def __init__(self, message: str, *, retryable: bool, timed_out: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.timed_out = timed_out


def create_session(backend_timeout: float) -> aiohttp.ClientSession:
    """Create the pooled session that forwards all prediction traffic of this process."""
    connector = aiohttp.TCPConnector(
        limit=MAX_CONNECTIONS,
        limit_per_host=0,
        keepalive_timeout=KEEPALIVE_SECONDS,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=backend_timeout),
        auto_decompress=False,
        # Forward the client's headers only: no User-Agent, Accept or Accept-Encoding of aiohttp's own.
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def send_request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: bytes,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Send one request and return status, response headers to pass on, and the body.

    `url` must already be percent-encoded. Raises BackendFailure when no complete
    response arrives.
    """
    try:
        response = await session.request(
            method, yarl.URL(url, encoded=True), headers=headers, data=body, allow_redirects=False,
        )
    except TimeoutError as error:
        # Includes aiohttp's ServerTimeoutError and ConnectionTimeoutError.
        raise BackendFailure(f"timed out: {_describe(error)}", retryable=False, timed_out=True) from error
    except aiohttp.ClientConnectionError as error:
        raise BackendFailure(f"connection failed: {_describe(error)}", retryable=True) from error

    try:
        response_body = await response.read()
    except TimeoutError as error:
        raise BackendFailure(f"timed out reading the response: {_describe(error)}",
                             retryable=False, timed_out=True) from error
    except aiohttp.ClientError as error:
        raise BackendFailure(f"response broke off: {_describe(error)}", retryable=False) from error
    finally:
        response.release()

    response_headers = []
    for name, value in response.raw_headers:
        name = name.lower()
        if name not in RESPONSE_HEADERS_NOT_FORWARDED:
            response_headers.append((name, value))

    return response.status, response_headers, response_body


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
