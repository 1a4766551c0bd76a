"""Fixtures that start real servers on 127.0.0.1 and stop them after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.gateway.servers import Backend, ClosingBackend, FakePortal, GatewayProcess


@pytest.fixture
def start_backend() -> Iterator[Callable[..., Backend]]:
    started: list[Backend | ClosingBackend] = []

    def start(name: str, version: int, closing: bool = False) -> Backend:
        backend = ClosingBackend(name, version) if closing else Backend(name, version)
        backend.start()
        started.append(backend)
        return backend

    yield start

    for backend in started:
        backend.stop()


@pytest.fixture
def start_portal() -> Iterator[Callable[[dict[str, Any]], FakePortal]]:
    started: list[FakePortal] = []

    def start(table: dict[str, Any]) -> FakePortal:
        portal = FakePortal(table)
        portal.start()
        started.append(portal)
        return portal

    yield start

    for portal in started:
        portal.stop()


@pytest.fixture
def start_gateway() -> Iterator[Callable[..., GatewayProcess]]:
    """Start `python -m gateway` with the given options and wait until it has a route table."""
    started: list[GatewayProcess] = []

    def start(*options: str, env: dict[str, str] | None = None, wait: bool = True) -> GatewayProcess:
        gateway = GatewayProcess(*options, env=env)
        started.append(gateway)
        if wait:
            gateway.wait_ready()
        return gateway

    yield start

    for gateway in started:
        gateway.stop()
