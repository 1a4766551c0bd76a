"""Fixtures: MLflow models saved once per session, and real server processes on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(REPO_ROOT))

import models  # noqa: E402

STARTUP_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 30


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class ServerProcess:
    process: subprocess.Popen
    port: int
    log_path: Path

    def request(self, method: str, path: str, body: Any = None, content_type: str | None = "application/json",
                timeout: float = 30) -> Response:
        """Send one request; a dict or list body is sent as JSON, bytes as they are."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        try:
            connection.request(method, path, body=body, headers=headers)
            reply = connection.getresponse()
            return Response(reply.status, {key.lower(): value for key, value in reply.getheaders()}, reply.read())
        finally:
            connection.close()

    def post(self, path: str, body: Any, content_type: str | None = "application/json") -> Response:
        return self.request("POST", path, body, content_type)

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def log(self) -> str:
        return self.log_path.read_text()


def start_server(model_dir: Path, name: str, log_path: Path, *extra_args: str, version: str = "1") -> ServerProcess:
    """Start ``python -m model_server`` on a listening socket that this test process binds and passes as --fd."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]

    command = [sys.executable, "-m", "model_server", "--model-dir", str(model_dir), "--name", name,
               "--version", version, "--fd", str(listener.fileno()), *extra_args]
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=_server_environment(), stdout=log_file,
                                   stderr=subprocess.STDOUT, pass_fds=[listener.fileno()])
    listener.close()

    server = ServerProcess(process, port, log_path)
    _wait_until_ready(server)
    return server


def _server_environment() -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MODEL_SERVER_")}
    environment["PYTHONPATH"] = str(REPO_ROOT)
    return environment


def _wait_until_ready(server: ServerProcess) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{server.log()}")
        try:
            if server.get("/ping").status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    server.process.kill()
    raise RuntimeError(f"server not ready after {STARTUP_TIMEOUT_SECONDS} s:\n{server.log()}")


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def breast_cancer_model(model_root) -> Path:
    return models.save_breast_cancer_pipeline(model_root / "breast-cancer")


@pytest.fixture(scope="session")
def breast_cancer_example(breast_cancer_model) -> dict[str, Any]:
    """One row of the saved input example: columns and values."""
    example = json.loads((breast_cancer_model / "input_example.json").read_text())
    return {"columns": example["columns"], "row": example["data"][0]}


@pytest.fixture(scope="session")
def nullable_model(model_root) -> Path:
    return models.save_nullable_integer_model(model_root / "nullable")


@pytest.fixture(scope="session")
def pyfunc_model(model_root) -> Path:
    return models.save_pyfunc_model(model_root / "pyfunc")


@pytest.fixture(scope="session")
def slow_model(model_root) -> Path:
    return models.save_slow_model(model_root / "slow")


@pytest.fixture(scope="session")
def broken_model(model_root, breast_cancer_model) -> Path:
    return models.save_broken_model(breast_cancer_model, model_root / "broken")


def _served(model_dir: Path, name: str, tmp_path_factory, *extra_args: str):
    server = start_server(model_dir, name, tmp_path_factory.mktemp("logs") / f"{name}.log", *extra_args)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def breast_cancer_server(breast_cancer_model, tmp_path_factory):
    yield from _served(breast_cancer_model, "breast-cancer", tmp_path_factory)


@pytest.fixture(scope="session")
def nullable_server(nullable_model, tmp_path_factory):
    yield from _served(nullable_model, "nullable", tmp_path_factory)


@pytest.fixture(scope="session")
def pyfunc_server(pyfunc_model, tmp_path_factory):
    yield from _served(pyfunc_model, "ages", tmp_path_factory)
