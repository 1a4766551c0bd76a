"""Steps the integration tests share: registering, releasing and predicting through the real stack."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.integration.conftest import wait_until

ENDPOINT = "breast-cancer"


def register(stack, model: str, zip_path: Path, timeout: float = 120) -> dict:
    """Upload a zipped model and wait until the worker has checked it."""
    with open(zip_path, "rb") as handle:
        response = stack.api.post(f"/api/v1/models/{model}/versions/", files={"artifact": ("model.zip", handle, "application/zip")})
    assert response.status_code == 201, response.text

    number = response.json()["version"]
    url = f"/api/v1/models/{model}/versions/{number}/"
    return wait_until(
        lambda: (lambda body: body if body["status"] != "pending" else None)(stack.api.get(url).json()),
        timeout,
        f"{model} v{number} to be checked (worker log: {stack.log('worker')[-1500:]})",
        interval=0.3,
    )


def release(stack, model: str, version: int, *, environment: str = "development", timeout: float = 120, **extra) -> dict:
    """Request a release and wait until it reaches a final state."""
    body = {"endpoint": ENDPOINT, "environment": environment, "model": model, "version": version, **extra}
    response = stack.api.post("/api/v1/releases/", json=body)
    assert response.status_code == 201, response.text
    return wait_for_release(stack, response.json()["id"], timeout)


def wait_for_release(stack, release_id: int, timeout: float = 120, states=("promoted", "failed", "aborted", "rolled_back")) -> dict:
    return wait_until(
        lambda: (lambda body: body if body["state"] in states else None)(stack.api.get(f"/api/v1/releases/{release_id}/").json()),
        timeout,
        f"release {release_id} to reach {states} (worker log: {stack.log('worker')[-1500:]})",
        interval=0.3,
    )


def predict(stack, payload: dict, endpoint: str = ENDPOINT) -> httpx.Response:
    return httpx.post(f"{stack.gateway_url}/endpoints/{endpoint}/invocations", json=payload, timeout=30)


def wait_for_version(stack, payload: dict, version: int, timeout: float = 10) -> None:
    wait_until(
        lambda: predict(stack, payload).headers.get("x-model-version") == str(version),
        timeout,
        f"the gateway to route {ENDPOINT} to version {version}",
    )


class RequestStream:
    """Clients that send predictions without pause until stopped, counting outcomes and versions."""

    def __init__(self, url: str, payload: dict, clients: int = 4):
        self.url = url
        self.payload = payload
        self.clients = clients
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.versions: Counter = Counter()
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self):
        with httpx.Client(timeout=30) as client:
            while not self.stop_event.is_set():
                try:
                    response = client.post(self.url, json=self.payload)
                    status, version = response.status_code, response.headers.get("x-model-version")
                    if status != 200:
                        detail = f"{status}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    status, version, detail = "error", None, repr(exc)
                with self.lock:
                    self.statuses[status] += 1
                    if version:
                        self.versions[version] += 1
                    if status != 200:
                        self.errors.append(detail)

    @property
    def failures(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)

    def wait_for_requests(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while sum(self.statuses.values()) < count and time.monotonic() < deadline:
            time.sleep(0.05)
