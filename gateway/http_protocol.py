"""uvicorn's httptools protocol with each response's head and body sent in one write.

uvicorn 0.55 writes the status line and headers when the application sends
`http.response.start`, and the body in a second write. On loopback each write() runs the
receiver's TCP path and wakes it. A py-spy profile of the gateway at 64 connections
had about 64 % of all samples in write(), and 18 % of all samples in body writes.
The gateway always sends the whole body right after the start message, so holding the
header block until the body write saves one system call per response.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class CoalescingTransport:
    """Transport wrapper that holds a response header block until the next write.

    A held block is written with the next write, and at the latest in the next event
    loop iteration, so a response without a body write (HEAD) is not delayed further.
    Interim 1xx responses, such as uvicorn's 100 Continue, are written at once. Every
    other attribute is the wrapped transport's.
    """

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._pending is not None:
            data = self._pending + data
            self._pending = None
            self._transport.write(data)
            return

        if data.startswith(b"HTTP/1.1 ") and data.endswith(b"\r\n\r\n") and data[9:10] != b"1":
            self._pending = data
            self._loop.call_soon(self.flush)
            return

        self._transport.write(data)

    def flush(self) -> None:
        """Write a held header block now."""
        if self._pending is not None:
            data = self._pending
            self._pending = None
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose responses leave in one write. Pass it to uvicorn as `http=`.

    NOTE: this relies on uvicorn 0.55 internals: the protocol stores the transport from
    connection_made and writes every response through it. Check it when upgrading.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
