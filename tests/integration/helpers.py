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


def start_release(stack, model: str, version: int, *, environment: str = "development", **extra) -> dict:
    """Request a release and return it as the API does, without waiting."""
    body = {"endpoint": ENDPOINT, "environment": environment, "model": model, "version": version, **extra}
    response = stack.api.post("/api/v1/releases/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def release(stack, model: str, version: int, *, environment: str = "development", timeout: float = 120, **extra) -> dict:
    """Request a release and wait until it reaches a final state."""
    created = start_release(stack, model, version, environment=environment, **extra)
    return wait_for_release(stack, created["id"], timeout)


FINAL_STATES = ("promoted", "failed", "aborted", "rolled_back")


def wait_for_release(stack, release_id: int, timeout: float = 120, states=FINAL_STATES) -> dict:
    return wait_until(
        lambda: (lambda body: body if body["state"] in states else None)(stack.api.get(f"/api/v1/releases/{release_id}/").json()),
        timeout,
        f"release {release_id} to reach {states} (worker log: {stack.log('worker')[-1500:]})",
        interval=0.2,
    )


def act(stack, release_id: int, action: str, reason: str) -> dict:
    """Call a release action (pause, resume, promote, promote-fully, abort, rollback, retry) and return the release.

    The reason is required because abort and rollback reject an empty one.
    """
    response = stack.api.post(f"/api/v1/releases/{release_id}/{action}/", json={"reason": reason})
    assert response.status_code == 200, response.text
    return response.json()


def events(stack, release_id: int) -> list[dict]:
    return stack.api.get(f"/api/v1/releases/{release_id}/events/").json()


def predict(stack, payload: dict, endpoint: str = ENDPOINT) -> httpx.Response:
    return httpx.post(f"{stack.gateway_url}/endpoints/{endpoint}/invocations", json=payload, timeout=30)


def wait_for_version(stack, payload: dict, version: int, timeout: float = 10) -> None:
    wait_until(
        lambda: predict(stack, payload).headers.get("x-model-version") == str(version),
        timeout,
        f"the gateway to route {ENDPOINT} to version {version}",
    )


class RequestStream:
    """Clients that send predictions without pause until stopped, counting outcomes and versions.

    Each client cycles through `payloads`. Every response is kept in `records`
    as (monotonic time sent, status, version), so a test can look at the
    requests sent after a given moment.
    """

    def __init__(self, url: str, payload: dict | list[dict], clients: int = 4):
        self.url = url
        self.payloads = payload if isinstance(payload, list) else [payload]
        self.clients = clients
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.statuses: Counter = Counter()
        self.versions: Counter = Counter()
        self.errors: list[str] = []
        self.records: list[tuple[float, object, str | None]] = []
        self.threads = [threading.Thread(target=self._run, args=(number,), daemon=True) for number in range(clients)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop_event.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self, number: int):
        sent = number
        with httpx.Client(timeout=30) as client:
            while not self.stop_event.is_set():
                payload = self.payloads[sent % len(self.payloads)]
                sent += 1
                started = time.monotonic()
                try:
                    response = client.post(self.url, json=payload)
                    status, version = response.status_code, response.headers.get("x-model-version")
                    if status != 200:
                        detail = f"{status}: {response.text[:200]}"
                except httpx.HTTPError as exc:
                    status, version, detail = "error", None, repr(exc)
                with self.lock:
                    self.records.append((started, status, version))
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

    def wait_for_more(self, count: int, timeout: float = 30) -> None:
        """Wait until `count` more responses than now have arrived."""
        self.wait_for_requests(sum(self.statuses.values()) + count, timeout)

    def versions_since(self, moment: float) -> Counter:
        """Count the versions that responded to requests sent at or after `moment` (time.monotonic())."""
        with self.lock:
            return Counter(version for sent, _, version in self.records if sent >= moment)

    def failures_since(self, moment: float) -> int:
        with self.lock:
            return sum(1 for sent, status, _ in self.records if sent >= moment and status != 200)
