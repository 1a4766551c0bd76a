#!/usr/bin/env python3
"""Set up MLOps Portal in a virtual environment, then run the demo or the tests.

    python3 run.py demo    install, then run the portal with a deployed demo model
    python3 run.py test    install, start PostgreSQL and Redis if needed, run every test

Only the standard library is used here, because this script runs before
anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / ".requirements-sha256"

TEST_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/mlops_portal"
TEST_REDIS_URL = "redis://127.0.0.1:6379/15"
CHROMIUM = Path("/usr/bin/chromium")


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] not in ("demo", "test"):
        print(__doc__.strip())
        return 2
    if sys.version_info < (3, 11):
        print(f"MLOps Portal needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
        return 2

    install()
    if argv[1] == "demo":
        return run_demo(argv[2:])
    return run_tests(argv[2:])


def install() -> None:
    """Create .venv and install requirements.txt unless the installed set is already current."""
    if not PYTHON.exists():
        step("Creating the virtual environment in .venv")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)

    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return

    step("Installing requirements.txt (about a minute on a fresh machine)")
    pip = [str(PYTHON), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(digest)


def run_demo(extra: list[str]) -> int:
    env = {**os.environ}
    env.setdefault("DJANGO_DEBUG", "true")
    # The demo runs on the embedded defaults: SQLite and the filesystem broker.
    for name in ("DATABASE_URL", "REDIS_URL"):
        if name in env:
            print(f"Note: using {name} from the environment.")
    return subprocess.call([str(PYTHON), "manage.py", "demo", *extra], cwd=ROOT, env=env)


def run_tests(extra: list[str]) -> int:
    env = {**os.environ}
    env.setdefault("DATABASE_URL", TEST_DATABASE_URL)
    env.setdefault("REDIS_URL", TEST_REDIS_URL)

    ensure_postgres(env)
    ensure_redis(env)
    ensure_chromium()
    ensure_container_engine(env)

    step("Running the test suite")
    return subprocess.call([str(PYTHON), "-m", "pytest", *extra], cwd=ROOT, env=env)


def ensure_postgres(env: dict) -> None:
    if not env["DATABASE_URL"].startswith("postgres") or port_open("127.0.0.1", 5432):
        return

    versions = sorted(Path("/etc/postgresql").glob("*")) if Path("/etc/postgresql").exists() else []
    if versions and shutil.which("pg_ctlcluster"):
        step("Starting PostgreSQL")
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1].name, "main", "start"], check=False)
        wait_for_port("127.0.0.1", 5432, 30)
    if not port_open("127.0.0.1", 5432):
        print("PostgreSQL is not running on 127.0.0.1:5432 and could not be started: testing on SQLite instead.")
        env.pop("DATABASE_URL")


def ensure_redis(env: dict) -> None:
    if port_open("127.0.0.1", 6379):
        return

    if shutil.which("redis-server"):
        step("Starting Redis")
        subprocess.run(
            ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", "6379",
             "--save", "", "--appendonly", "no"],
            check=False,
        )
        wait_for_port("127.0.0.1", 6379, 15)
    if not port_open("127.0.0.1", 6379):
        print("Redis is not running on 127.0.0.1:6379 and could not be started: testing on the filesystem broker.")
        env.pop("REDIS_URL")


def ensure_chromium() -> None:
    """Install Debian's Chromium for the browser tests when running as root with apt."""
    if CHROMIUM.exists() or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    step("Installing Chromium for the browser tests")
    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, env=apt_env, stdout=subprocess.DEVNULL)
    if not CHROMIUM.exists():
        subprocess.run(["apt-get", "update", "-q"], check=False, env=apt_env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], check=False, env=apt_env, stdout=subprocess.DEVNULL)


def ensure_container_engine(env: dict) -> None:
    """Start Podman's Docker-compatible API for the container tests, when this machine allows it."""
    script = ROOT / ".ci" / "container-engine"
    if "DOCKER_HOST" in env or not script.exists() or os.geteuid() != 0:
        return
    step("Starting the container engine (Podman with a Docker-compatible API)")
    completed = subprocess.run([str(script), "start"], cwd=ROOT, capture_output=True, text=True)
    for line in completed.stdout.splitlines():
        if line.startswith("DOCKER_HOST="):
            env["DOCKER_HOST"] = line.split("=", 1)[1]
    if completed.returncode != 0:
        print(f"The container engine did not start (exit code {completed.returncode}); container tests will be skipped.")
        print(completed.stderr[-2000:])


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not port_open(host, port):
        time.sleep(0.5)


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
