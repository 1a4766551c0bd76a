"""Importing from an MLflow store on PostgreSQL and from an MLflow tracking server on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.db import connection

from registry.models import ModelVersion

pytestmark = pytest.mark.django_db

MLFLOW_MODEL = "breast-cancer-classifier"
STARTUP_TIMEOUT = 120


@pytest.fixture(scope="module")
def postgresql_store(tmp_path_factory) -> str:
    """A real MLflow store in its own PostgreSQL database, with the demo model registered."""
    from mlops_portal import demo

    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    host = connection.settings_dict.get("HOST") or "127.0.0.1"
    port = connection.settings_dict.get("PORT") or 5432
    # Named after the test database, so parallel runs on other databases do not collide.
    database = f"{connection.settings_dict['NAME']}_mlflow"
    subprocess.run(["dropdb", "--if-exists", "-h", host, "-p", str(port), "-U", "postgres", database], check=True)
    subprocess.run(["createdb", "-h", host, "-p", str(port), "-U", "postgres", database], check=True)

    tracking_uri = f"postgresql+psycopg://postgres@{host}:{port}/{database}"
    demo.log_and_register(tracking_uri, tmp_path_factory.mktemp("pg-artifacts").as_uri())
    return tracking_uri


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory) -> str:
    """`mlflow server` on a free port of 127.0.0.1 with a sqlite backend, stopped by PID afterwards."""
    from mlops_portal import demo
    from tests.integration.conftest import free_port

    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}", "--artifacts-destination", str(folder / "artifacts"),
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=folder)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(url + "/health", process)
        demo.log_and_register(url, "mlflow-artifacts:/breast-cancer")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_for(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited with status {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"mlflow server did not respond on {url} within {STARTUP_TIMEOUT} s")


def _import(api_client, tracking_uri: str):
    return api_client.post("/api/v1/imports/", {"tracking_uri": tracking_uri, "mlflow_model": MLFLOW_MODEL}, format="json")


def test_postgresql_import_creates_version(api_client, postgresql_store):
    assert _import(api_client, postgresql_store).json()["created"] == [1]


def test_postgresql_import_twice_adds_nothing(api_client, postgresql_store):
    _import(api_client, postgresql_store)
    _import(api_client, postgresql_store)
    assert ModelVersion.objects.count() == 1


def test_server_import_creates_version(api_client, tracking_server):
    assert _import(api_client, tracking_server).json()["created"] == [1]


def test_server_import_copies_alias(api_client, tracking_server):
    assert _import(api_client, tracking_server).json()["model"]["aliases"] == {"champion": 1}


def test_server_import_twice_returns_200(api_client, tracking_server):
    _import(api_client, tracking_server)
    assert _import(api_client, tracking_server).status_code == 200


def test_server_import_twice_adds_nothing(api_client, tracking_server):
    _import(api_client, tracking_server)
    _import(api_client, tracking_server)
    assert ModelVersion.objects.count() == 1
