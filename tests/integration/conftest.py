"""A running portal for integration tests: live web server, Celery worker, beat and gateway processes.

The web server is pytest-django's live server on the test database. The
worker, Celery beat and the gateway are real subprocesses started here and
stopped by PID at the end, together with every model server the worker started.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from deployments.models import Environment

DEFAULT_ENVIRONMENTS = [("development", "", False), ("staging", "", False), ("production", "", True)]

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url() -> str:
    """Return a URL for the test database that the live server uses, for child processes."""
    config = connection.settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    user = config.get("USER") or "postgres"
    password = f":{config['PASSWORD']}" if config.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{config.get('HOST') or '127.0.0.1'}:{config.get('PORT') or 5432}/{config['NAME']}"


def wait_until(condition, timeout: float, description: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"Timed out after {timeout:.0f} s waiting for {description}")


@dataclasses.dataclass
class Stack:
    web_url: str
    gateway_url: str
    api: httpx.Client
    log_dir: Path
    processes: Processes
    worker_env: dict[str, str]

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def kill_worker(self, name: str = "worker") -> None:
        """SIGKILL the worker's whole process group, as when its machine or container dies."""
        self.processes.stop(name, signal.SIGKILL)

    def start_worker(self, name: str) -> subprocess.Popen:
        return start_worker(self.processes, name, **self.worker_env)


class Processes:
    """Child processes started by a fixture; stopped by PID, never by name."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.children: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen:
        with open(self.log_dir / f"{name}.log", "ab") as log_file:
            process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        self.children[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.children.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop_all(self) -> None:
        for name in list(self.children):
            self.stop(name)


def child_env(**overrides) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1", **overrides}
    return env


def start_worker(processes: Processes, name: str = "worker", **env_overrides) -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "mlops_portal", "worker", "--loglevel", "INFO",
               "--concurrency", "2", "--hostname", f"{name}@%h", "--without-mingle", "--without-gossip"]
    return processes.start(name, command, child_env(**env_overrides))


def start_beat(processes: Processes, **env_overrides) -> subprocess.Popen:
    """Start Celery beat with the database schedule, which runs the sweeps in deployments.apps.PERIODIC_TASKS."""
    command = [sys.executable, "-m", "celery", "-A", "mlops_portal", "beat", "--loglevel", "INFO"]
    return processes.start("beat", command, child_env(**env_overrides))


def purge_broker() -> None:
    from mlops_portal.celery import app

    app.control.purge()


def stop_model_servers() -> None:
    """Stop every model server the local runtime finds, whether or not the database still lists it."""
    from deployments.runtimes.local import LocalRuntime

    runtime = LocalRuntime(settings.PORTAL_SERVER_DIR, code_dir=settings.BASE_DIR)
    for handle in runtime.list_servers():
        runtime.stop(handle, grace_seconds=5)


@pytest.fixture
def stack(live_server, transactional_db, django_user_model, tmp_path, request, stack_worker_env):
    """The whole portal on this machine; yields a Stack with an API client logged in as an admin."""
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    processes = Processes(log_dir)
    purge_broker()

    marker = request.node.get_closest_marker("stack_env")
    worker_env = {**(marker.kwargs if marker else {}), **stack_worker_env}
    start_worker(processes, **worker_env)
    start_beat(processes, **worker_env)

    gateway_port = free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    processes.start(
        "gateway",
        [sys.executable, "-m", "gateway", "--host", "127.0.0.1", "--port", str(gateway_port),
         "--portal-url", live_server.url, "--poll-interval", "0.2", "--report-interval", "1"],
        child_env(GATEWAY_TOKEN=settings.PORTAL_GATEWAY_TOKEN),
    )

    for name, description, approval in DEFAULT_ENVIRONMENTS:
        Environment.objects.get_or_create(name=name, defaults={"description": description, "requires_approval": approval})
    admin = django_user_model.objects.create_superuser("admin", "admin@example.org", "a-long-admin-password-1")
    token = Token.objects.create(user=admin)
    api = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Token {token.key}"}, timeout=120)
    stack = Stack(
        web_url=live_server.url, gateway_url=gateway_url, api=api, log_dir=log_dir,
        processes=processes, worker_env=worker_env,
    )

    wait_until(lambda: _answers(f"{gateway_url}/v2/health/live"), STARTUP_TIMEOUT, "the gateway")
    try:
        yield stack
    finally:
        api.close()
        processes.stop_all()
        stop_model_servers()
        purge_broker()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
