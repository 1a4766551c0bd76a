"""The interface every runtime implements: prepare, start, health, stop.

A runtime hides where a model server runs. Celery tasks call these methods and
store the returned handle on the ModelServer row, so a later task (or another
worker) can check or stop the same server.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any


class RuntimeFailure(Exception):
    """A runtime step failed; the message is shown to users as the failure reason."""


@dataclasses.dataclass(frozen=True)
class ServerSpec:
    """Everything a runtime needs to run one model version for one endpoint."""

    server_id: int
    endpoint: str
    model: str
    version: int
    model_dir: Path
    artifact_sha256: str
    model_name: str
    workers: int = 1
    max_batch_size: int = 64
    memory_mb: int | None = None
    cpus: float | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    labels: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ServerHandle:
    """Where a started server runs; `ref` is runtime-specific and stored as JSON."""

    runtime: str
    server_id: int
    url: str
    ref: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Health:
    alive: bool
    ready: bool
    detail: str = ""


LogFn = Callable[[str], None]


class Runtime(abc.ABC):
    name: str
    # True where prepare() builds something slow, such as a container image;
    # the portal then runs it in a build task with a live log.
    builds_images: bool = False

    @abc.abstractmethod
    def prepare(self, spec: ServerSpec, log: LogFn) -> dict[str, Any]:
        """Build or fetch what the server needs and return a JSON-able reference to it; idempotent."""

    @abc.abstractmethod
    def start(self, spec: ServerSpec, prepared: dict[str, Any]) -> ServerHandle:
        """Start the server, or adopt the one already running for spec.server_id."""

    @abc.abstractmethod
    def health(self, handle: ServerHandle) -> Health:
        """Report whether the server process is alive and its model is loaded."""

    @abc.abstractmethod
    def stop(self, handle: ServerHandle, grace_seconds: float = 10.0) -> None:
        """Stop the server; stopping a server that is already gone is not an error."""

    @abc.abstractmethod
    def logs(self, handle: ServerHandle, tail: int = 200) -> str:
        """Return the last lines the server wrote."""

    # True where every worker lists the same servers (one container engine).
    # False where each machine lists only its own (local processes).
    shared_view: bool = False

    @abc.abstractmethod
    def list_servers(self, include_stopped: bool = False) -> list[ServerHandle]:
        """List the servers this runtime started and that still run (or also stopped ones), for reconciling."""
