"""Unit tests for the transport wrapper that sends a response's head and body in one write."""

from __future__ import annotations

import asyncio

from gateway.http_protocol import CoalescingTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n"


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def run_with_transport(steps) -> RecordingTransport:
    """Run `steps(transport)` in an event loop, let one more iteration pass, and return the record."""
    recorder = RecordingTransport()

    async def scenario() -> None:
        transport = CoalescingTransport(recorder, asyncio.get_running_loop())
        steps(transport)
        await asyncio.sleep(0)

    asyncio.run(scenario())
    return recorder


def test_coalescing_joins_head_and_body():
    recorder = run_with_transport(lambda transport: (transport.write(HEAD), transport.write(b"{}")))

    assert recorder.writes == [HEAD + b"{}"]


def test_coalescing_flushes_head_without_body():
    recorder = run_with_transport(lambda transport: transport.write(HEAD))

    assert recorder.writes == [HEAD]


def test_coalescing_writes_continue_at_once():
    continue_line = b"HTTP/1.1 100 Continue\r\n\r\n"

    recorder = run_with_transport(lambda transport: (transport.write(continue_line), transport.write(HEAD)))

    assert recorder.writes[0] == continue_line


def test_coalescing_flushes_on_close():
    def steps(transport: CoalescingTransport) -> None:
        transport.write(HEAD)
        transport.close()

    recorder = run_with_transport(steps)

    assert recorder.writes == [HEAD]
    assert recorder.closed


def test_coalescing_passes_other_writes():
    recorder = run_with_transport(lambda transport: transport.write(b"5\r\nhello\r\n"))

    assert recorder.writes == [b"5\r\nhello\r\n"]


def test_coalescing_delegates_attributes():
    recorder = RecordingTransport()

    async def scenario() -> bool:
        return CoalescingTransport(recorder, asyncio.get_running_loop()).is_closing()

    assert asyncio.run(scenario()) is False
