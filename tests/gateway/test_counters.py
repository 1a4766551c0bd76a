"""Tests for the per-version counters: the report built in a process, and the reports the portal gets."""

from __future__ import annotations

import re
import socket

import httpx

from gateway.counters import LATENCY_BUCKETS, RequestCounters
from gateway.routes import Backend
from tests.gateway.servers import TOKEN, backend_entry, route_table, wait_until

BODY = b'{"inputs": [[5.1, 3.5, 1.4, 0.2]]}'
PORTAL_TOKEN = {"GATEWAY_TOKEN": TOKEN}


def make_backend(server_id: int, version: int) -> Backend:
    return Backend(
        key=f"s{server_id}", server_id=server_id, model="iris-classifier", version=version,
        url="http://127.0.0.1:1", model_name="iris-model", weight_units=1000, role="stable",
    )


def test_counters_classify_status():
    counters = RequestCounters()
    backend = make_backend(301, 1)

    for status in (200, 201, 400, 404, 500, 503, 0):
        counters.record("counters-unit", backend, status, 0.002)
    (series,) = counters.snapshot()

    assert series["requests"] == 7
    assert series["client_errors"] == 2
    assert series["server_errors"] == 3


def test_counters_cumulative_buckets():
    counters = RequestCounters()
    backend = make_backend(302, 1)

    for seconds in (0.0004, 0.001, 0.003, 0.003, 0.2, 60.0):
        counters.record("counters-unit", backend, 200, seconds)
    (series,) = counters.snapshot()
    buckets = dict((bound, count) for bound, count in series["latency_buckets"])

    assert [bound for bound, _ in series["latency_buckets"]] == list(LATENCY_BUCKETS)
    assert buckets[0.0005] == 1
    assert buckets[0.001] == 2
    assert buckets[0.005] == 4
    assert buckets[0.25] == 5
    assert buckets[30.0] == 5
    assert abs(series["latency_sum"] - 60.2074) < 1e-9


def test_counters_separate_per_version():
    counters = RequestCounters()

    counters.record("counters-unit", make_backend(303, 3), 200, 0.001)
    counters.record("counters-unit", make_backend(304, 4), 200, 0.001)
    counters.record("counters-unit", make_backend(304, 4), 200, 0.001)
    requests = {(series["server_id"], series["version"]): series["requests"] for series in counters.snapshot()}

    assert requests == {(303, 3): 1, (304, 4): 2}


def test_reports_carry_correct_counters(start_backend, start_portal, start_gateway):
    stable = start_backend("stable", 3)
    candidate = start_backend("candidate", 4)
    portal = start_portal(route_table(12, {"iris": [
        backend_entry(stable, 9, 100.0), backend_entry(candidate, 11, 0.0, role="candidate"),
    ]}, preview={"header": "x-canary", "value": "always", "backend": "s11"}))
    gateway = start_gateway("--portal-url", portal.url, "--report-interval", "0.2", env=PORTAL_TOKEN)

    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(7):
            client.post("/v2/models/iris/infer", content=BODY)
        for _ in range(2):
            client.post("/v2/models/iris/infer", content=BODY, headers={"x-test-status": "404"})
        for _ in range(3):
            client.post("/v2/models/iris/infer", content=BODY, headers={"x-test-status": "503"})
        for _ in range(4):
            client.post("/v2/models/iris/infer", content=BODY, headers={"x-canary": "always"})

    def counters_by_server() -> dict[int, dict] | None:
        for report in portal.latest_reports().values():
            by_server = {series["server_id"]: series for series in report["counters"]}
            if by_server.get(9, {}).get("requests") == 12 and by_server.get(11, {}).get("requests") == 4:
                return by_server
        return None

    by_server = wait_until(counters_by_server, 5)
    (report,) = portal.latest_reports().values()
    stable_series = by_server[9]
    stable_buckets = [count for _, count in stable_series["latency_buckets"]]

    assert report["revision"] == 12
    assert re.fullmatch(re.escape(socket.gethostname()) + r":\d+", report["instance"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["started_at"])
    assert stable_series["endpoint"] == "iris"
    assert stable_series["version"] == 3
    assert stable_series["client_errors"] == 2
    assert stable_series["server_errors"] == 3
    assert stable_series["latency_sum"] > 0
    assert stable_buckets == sorted(stable_buckets)
    assert stable_buckets[-1] == 12
    assert by_server[11]["version"] == 4
    assert by_server[11]["server_errors"] == 0
    assert portal.unauthorized == 0


def test_reports_count_unreachable_as_server_error(start_portal, start_gateway):
    portal = start_portal({"revision": 1, "endpoints": {"iris": {"backends": [{
        "key": "s5", "server_id": 5, "model": "iris-classifier", "version": 2,
        "url": "http://127.0.0.1:9", "model_name": "iris-model", "weight": 100.0, "role": "stable",
    }]}}})
    gateway = start_gateway("--portal-url", portal.url, "--report-interval", "0.2", env=PORTAL_TOKEN)

    statuses = [httpx.post(gateway.url + "/v2/models/iris/infer", content=BODY).status_code for _ in range(3)]
    reported = wait_until(
        lambda: [series for report in portal.latest_reports().values() for series in report["counters"]
                 if series["server_errors"] == 3],
        5,
    )

    assert statuses == [502, 502, 502]
    assert reported
    assert reported[0]["requests"] == 3


def test_workers_report_and_metrics_sum(start_backend, start_portal, start_gateway):
    backend = start_backend("stable", 3)
    portal = start_portal(route_table(1, {"iris": [backend_entry(backend, 9, 100.0)]}))
    gateway = start_gateway(
        "--portal-url", portal.url, "--workers", "2", "--report-interval", "0.2", env=PORTAL_TOKEN,
    )
    wait_until(lambda: len(portal.latest_reports()) == 2, 10)

    # Fresh connections, so that the requests can land on either worker.
    for _ in range(40):
        httpx.post(gateway.url + "/v2/models/iris/infer", content=BODY)

    def reported_total() -> int:
        return sum(series["requests"] for report in portal.latest_reports().values()
                   for series in report["counters"])

    reported_all = wait_until(lambda: reported_total() == 40, 5)
    metrics = httpx.get(gateway.url + "/metrics").text
    exported = re.search(r'gateway_requests_total\{endpoint="iris",server_id="9",version="3"\} (\S+)', metrics)

    assert reported_all
    assert len(portal.latest_reports()) == 2
    assert exported is not None
    assert float(exported.group(1)) == 40.0
