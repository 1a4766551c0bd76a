"""Tests for the connection pool that forwards requests, against raw HTTP servers on 127.0.0.1."""

from __future__ import annotations

import asyncio

import pytest

from gateway.proxy import BackendFailure, ConnectionPool, Response
from tests.gateway.servers import free_port

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 19\r\n\r\n" b'{"predictions":[0]}'


class RawServer:
    """Send canned response bytes to each request; record the requests and connections."""

    def __init__(self, responses: list[bytes | None], close_after: bool = False) -> None:
        self.responses = list(responses)
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                self.requests.append(head + await reader.readexactly(length))

                response = self.responses.pop(0) if self.responses else OK
                if response is None:
                    # Never respond: the client has to time out.
                    await asyncio.sleep(60)
                    return
                writer.write(response)
                await writer.drain()
                if self.close_after:
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def forward(
    server: RawServer, *, method: bytes = b"POST", body: bytes = b"{}", timeout: float = 5.0,
    headers: list[tuple[bytes, bytes]] | None = None, count: int = 1,
) -> list[Response]:
    """Send `count` requests through a new pool to the server, one after the other."""

    async def scenario() -> list[Response]:
        url = await server.start()
        pool = ConnectionPool(timeout)
        try:
            return [await pool.request(url, method, b"/invocations", headers or [], body) for _ in range(count)]
        finally:
            pool.close()
            server.close()

    return asyncio.run(scenario())


def test_pool_reads_content_length_response():
    (response,) = forward(RawServer([OK]))

    assert response.status == 200
    assert response.body == b'{"predictions":[0]}'
    assert response.headers == [(b"content-type", b"application/json")]


def test_pool_reads_chunked_response():
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")

    (response,) = forward(RawServer([chunked]))

    assert response.body == b"hello world"
    assert response.headers == []


def test_pool_drops_trailers():
    chunked = (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n"
               b"2\r\nok\r\n0\r\nx-checksum: 1234\r\n\r\n")

    (response,) = forward(RawServer([chunked]))

    assert response.body == b"ok"
    assert response.headers == []


def test_pool_reads_body_until_close():
    (response,) = forward(RawServer([b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil close"], close_after=True))

    assert response.status == 200
    assert response.body == b"until close"


def test_pool_skips_interim_response():
    interim = b"HTTP/1.1 103 Early Hints\r\nlink: </a>; rel=preload\r\n\r\n" + OK

    (response,) = forward(RawServer([interim]))

    assert response.status == 200
    assert response.headers == [(b"content-type", b"application/json")]


def test_pool_head_response_without_body():
    head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 19\r\n\r\n"
    server = RawServer([head, OK])

    responses = forward(server, method=b"HEAD", body=b"", count=2)

    assert [response.status for response in responses] == [200, 200]
    assert responses[0].body == b""
    assert server.connections == 2


def test_pool_reuses_connection():
    server = RawServer([OK, OK, OK])

    responses = forward(server, count=3)

    assert [response.status for response in responses] == [200, 200, 200]
    assert server.connections == 1


def test_pool_writes_request_head():
    server = RawServer([OK])

    forward(server, body=b'{"x": 1}', headers=[(b"content-type", b"application/json"), (b"x-request-id", b"7")])
    request = server.requests[0]

    assert request.startswith(b"POST /invocations HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\ncontent-type: application/json\r\n" in request
    assert b"\r\nx-request-id: 7\r\n" in request
    assert b"\r\ncontent-length: 8\r\n" in request
    assert request.endswith(b'\r\n\r\n{"x": 1}')


def test_pool_get_without_content_length():
    server = RawServer([OK])

    forward(server, method=b"GET", body=b"")

    assert b"content-length" not in server.requests[0]


def test_pool_refused_is_retryable():
    async def scenario() -> None:
        pool = ConnectionPool(5)
        try:
            await pool.request(f"http://127.0.0.1:{free_port()}", b"POST", b"/invocations", [], b"{}")
        finally:
            pool.close()

    with pytest.raises(BackendFailure) as raised:
        asyncio.run(scenario())

    assert raised.value.retryable
    assert "connection failed" in str(raised.value)


def test_pool_close_before_response_is_retryable():
    with pytest.raises(BackendFailure) as raised:
        forward(RawServer([b""], close_after=True))

    assert raised.value.retryable
    assert "connection closed before any response" in str(raised.value)


def test_pool_close_mid_response_not_retryable():
    partial = b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part"

    with pytest.raises(BackendFailure) as raised:
        forward(RawServer([partial], close_after=True))

    assert not raised.value.retryable
    assert "in the middle of the response" in str(raised.value)


def test_pool_invalid_response_not_retryable():
    with pytest.raises(BackendFailure) as raised:
        forward(RawServer([b"NOT HTTP AT ALL\r\n\r\n"]))

    assert not raised.value.retryable
    assert "invalid HTTP response" in str(raised.value)


def test_pool_times_out():
    with pytest.raises(BackendFailure) as raised:
        forward(RawServer([None]), timeout=0.3)

    assert raised.value.timed_out
    assert not raised.value.retryable
    assert "timed out after 0.3 s" in str(raised.value)
