"""A portal on PostgreSQL behind gunicorn on 127.0.0.1, for the registry benchmarks.

`portal_server()` creates a fresh database, migrates it, creates a user with an
API token, starts gunicorn (the server that the Dockerfile and the demo use) and
stops it by PID when the block ends. Needs PostgreSQL on 127.0.0.1:5432 with
trust authentication for the user postgres, as the test suite does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_SECONDS = 60


@dataclasses.dataclass
class Portal:
    url: str
    token: str
    process: subprocess.Popen
    env: dict

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Token {self.token}"}, **kwargs)

    def worker_pids(self) -> list[int]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return [int(pid) for pid in children]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _manage(env: dict, *args: str) -> str:
    completed = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=True
    )
    return completed.stdout


@contextlib.contextmanager
def portal_server(database: str, workers: int = 4, extra_env: dict | None = None):
    var_dir = Path(tempfile.mkdtemp(prefix="registry-bench-"))
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
        "DJANGO_DEBUG": "true",
        "PORTAL_VAR_DIR": str(var_dir),
        "PORTAL_LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    # Without REDIS_URL the load checks that registration queues land in the
    # filesystem broker under var_dir, and no worker runs them.
    env.pop("REDIS_URL", None)
    subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", database], check=True)
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", database], check=True)
    _manage(env, "migrate", "--noinput")
    token = _manage(
        env, "shell", "-c",
        "from django.contrib.auth.models import User; from rest_framework.authtoken.models import Token;"
        "user = User.objects.create_user('bench', password='bench-password-1');"
        "print(Token.objects.create(user=user).key)",
    ).strip().splitlines()[-1]

    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", "mlops_portal.wsgi", "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers), "--timeout", "600", "--log-level", "warning",
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env)
    portal = Portal(url=f"http://127.0.0.1:{port}", token=token, process=process, env=env)
    try:
        _wait_ready(portal)
        yield portal
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(portal: Portal) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            if portal.client().get("/api/v1/models/").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not respond on {portal.url} within {STARTUP_TIMEOUT_SECONDS} s")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))
    return ordered[index]


def machine() -> str:
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    memory = re.search(r"MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text())
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({cpu.group(1) if cpu else 'unknown CPU'}), "
        f"{int(memory.group(1)) / 1024**2:.0f} GiB RAM, {platform.platform()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
