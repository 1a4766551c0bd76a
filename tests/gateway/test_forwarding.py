"""Integration tests: `python -m gateway` forwarding to real backends on 127.0.0.1."""

from __future__ import annotations

import re
import socket
import time
import types
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.servers import (
    Backend,
    GatewayProcess,
    backend_entry,
    free_port,
    route_table,
    write_table,
)

BODY = b'{"inputs": [{"name": "sepal_length", "shape": [1], "datatype": "FP64", "data": [5.1]}]}'


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[types.SimpleNamespace]:
    """One gateway with a routes file: `iris` (stable s9 at 100 %, candidate s11 at 0 % with a
    preview header), `empty` (no backends) and `unreachable` (a port with no listener)."""
    stable = Backend("stable", 3)
    candidate = Backend("candidate", 4)
    stable.start()
    candidate.start()

    table = route_table(1, {"iris": [
        backend_entry(stable, 9, 100.0),
        backend_entry(candidate, 11, 0.0, role="candidate"),
    ]}, preview={"header": "x-canary", "value": "always", "backend": "s11"})
    table["endpoints"]["empty"] = {"backends": []}
    table["endpoints"]["unreachable"] = {"backends": [{
        "key": "s20", "server_id": 20, "model": "iris-classifier", "version": 7,
        "url": f"http://127.0.0.1:{free_port()}", "model_name": "iris-model", "weight": 100.0, "role": "stable",
    }]}
    routes_file = tmp_path_factory.mktemp("routes") / "routes.json"
    write_table(routes_file, table)

    gateway = GatewayProcess("--routes-file", str(routes_file), "--backend-timeout", "1")
    try:
        gateway.wait_ready()
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            yield types.SimpleNamespace(gateway=gateway, client=client, stable=stable, candidate=candidate)
    finally:
        gateway.stop()
        stable.stop()
        candidate.stop()


def test_infer_rewritten_to_model_name(served):
    response = served.client.post("/v2/models/iris/infer", content=BODY)

    assert response.status_code == 200
    assert response.json()["path"] == "/v2/models/iris-model/infer"
    assert response.json()["method"] == "POST"
    assert response.json()["backend"] == "stable"


def test_infer_body_passed_as_bytes(served):
    body = bytes(range(256))

    response = served.client.post("/v2/models/iris/infer", content=body)

    assert response.json()["body"].encode("latin-1") == body


def test_infer_adds_version_headers(served):
    response = served.client.post("/v2/models/iris/infer", content=BODY)

    assert response.headers["x-model-version"] == "3"
    assert response.headers["x-endpoint"] == "iris"
    assert response.headers["x-served-by"] == "stable"
    assert response.headers["content-type"] == "application/json"


def test_metadata_routes_rewritten(served):
    metadata = served.client.get("/v2/models/iris")
    ready = served.client.get("/v2/models/iris/ready")

    assert metadata.json()["path"] == "/v2/models/iris-model"
    assert metadata.json()["method"] == "GET"
    assert ready.json()["path"] == "/v2/models/iris-model/ready"


def test_head_request_answered(served):
    response = served.client.head("/v2/models/iris")

    assert response.status_code == 200
    assert response.headers["x-model-version"] == "3"
    assert response.content == b""


def test_invocations_rewritten(served):
    response = served.client.post("/endpoints/iris/invocations", content=b'{"dataframe_split": {}}')

    assert response.status_code == 200
    assert response.json()["path"] == "/invocations"
    assert response.json()["body"] == '{"dataframe_split": {}}'
    assert response.headers["x-model-version"] == "3"


def test_partial_body_not_forwarded(served):
    requests_before = served.stable.requests
    with socket.create_connection(("127.0.0.1", served.gateway.port)) as client:
        client.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nhost: gateway\r\ncontent-length: 1000\r\n\r\n{")
    time.sleep(0.3)
    served.client.get("/v2/health/live")

    assert served.stable.requests == requests_before


def test_query_string_forwarded(served):
    response = served.client.post("/v2/models/iris/infer?trace=1&b=%20x", content=BODY)

    assert response.json()["raw_path"] == "/v2/models/iris-model/infer?trace=1&b=%20x"


def test_request_headers_forwarded(served):
    response = served.client.post(
        "/v2/models/iris/infer", content=BODY,
        headers={"x-request-id": "req-42", "content-type": "application/json"},
    )
    received = response.json()["headers"]

    assert received["x-request-id"] == "req-42"
    assert received["content-type"] == "application/json"
    assert received["content-length"] == str(len(BODY))


def test_backend_status_passed_through(served):
    response = served.client.post("/v2/models/iris/infer", content=BODY, headers={"x-test-status": "422"})

    assert response.status_code == 422
    assert response.headers["x-model-version"] == "3"


def test_preview_header_reaches_candidate(served):
    response = served.client.post("/v2/models/iris/infer", content=BODY, headers={"x-canary": "always"})

    assert response.json()["backend"] == "candidate"
    assert response.headers["x-model-version"] == "4"


def test_zero_weight_candidate_gets_no_traffic(served):
    versions = {served.client.post("/v2/models/iris/infer", content=BODY).headers["x-model-version"]
                for _ in range(50)}

    assert versions == {"3"}


def test_unknown_endpoint_404(served):
    response = served.client.post("/v2/models/nosuch/infer", content=BODY)

    assert response.status_code == 404
    assert response.json() == {"error": "endpoint 'nosuch' not found"}


def test_unknown_endpoint_invocations_404(served):
    response = served.client.post("/endpoints/nosuch/invocations", content=BODY)

    assert response.status_code == 404
    assert response.json() == {"error": "endpoint 'nosuch' not found"}


def test_unknown_path_404(served):
    response = served.client.get("/v1/models")

    assert response.status_code == 404
    assert response.json() == {"error": "no route for /v1/models"}


def test_endpoint_without_backend_503(served):
    response = served.client.post("/v2/models/empty/infer", content=BODY)

    assert response.status_code == 503
    assert response.json() == {"error": "endpoint 'empty' has no backend with traffic"}
    assert response.headers["x-endpoint"] == "empty"


def test_unreachable_backend_502(served):
    response = served.client.post("/v2/models/unreachable/infer", content=BODY)

    assert response.status_code == 502
    assert "backend s20 (server 20, version 7) of endpoint 'unreachable' did not answer" in response.json()["error"]
    assert "connection failed" in response.json()["error"]


def test_unreachable_backend_log_rate_limited(served):
    statuses = {served.client.post("/v2/models/unreachable/infer", content=BODY).status_code for _ in range(20)}
    failure_lines = [line for line in served.gateway.log().splitlines() if "backend s20 (server 20, version 7)" in line]

    assert statuses == {502}
    assert 1 <= len(failure_lines) <= 2


def test_slow_backend_504(served):
    response = served.client.post("/v2/models/iris/infer", content=BODY, headers={"x-test-delay": "2"})

    assert response.status_code == 504
    assert "timed out" in response.json()["error"]


def test_health_live(served):
    response = served.client.get("/v2/health/live")

    assert response.status_code == 200
    assert response.json() == {"live": True}


def test_health_ready_with_revision(served):
    response = served.client.get("/v2/health/ready")

    assert response.status_code == 200
    assert response.json() == {"ready": True, "revision": 1}


def test_metrics_count_forwarded_requests(served):
    for _ in range(5):
        served.client.post("/v2/models/iris/infer", content=BODY, headers={"x-canary": "always"})

    text = served.client.get("/metrics").text
    requests = re.search(r'gateway_requests_total\{endpoint="iris",server_id="11",version="4"\} (\S+)', text)

    assert requests is not None
    assert float(requests.group(1)) >= 5
    assert 'gateway_request_duration_seconds_bucket{endpoint="iris",le="0.005",server_id="11",version="4"}' in text
    assert 'gateway_unrouted_requests_total{reason="not_found"}' in text


# Retries, each with its own gateway because they stop backends.


def test_retry_when_backend_stops(tmp_path, start_backend, start_gateway):
    first = start_backend("first", 1)
    second = start_backend("second", 2)
    routes_file = tmp_path / "routes.json"
    write_table(routes_file, route_table(1, {"iris": [
        backend_entry(first, 1, 50.0), backend_entry(second, 2, 50.0, role="candidate"),
    ]}))
    gateway = start_gateway("--routes-file", str(routes_file))

    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        before = [client.post("/v2/models/iris/infer", content=BODY) for _ in range(20)]
        first.stop()
        after = [client.post("/v2/models/iris/infer", content=BODY) for _ in range(40)]
        metrics = client.get("/metrics").text

    assert {response.headers["x-model-version"] for response in before} == {"1", "2"}
    assert [response.status_code for response in after] == [200] * 40
    assert {response.headers["x-model-version"] for response in after} == {"2"}
    assert re.search(r'gateway_retries_total\{endpoint="iris",server_id="1",version="1"\} [1-9]', metrics)
    assert "retrying on s2 (server 2, version 2)" in gateway.log()


def test_retry_on_closed_keepalive_connection(tmp_path, start_backend, start_gateway):
    backend = start_backend("closing", 5, closing=True)
    routes_file = tmp_path / "routes.json"
    write_table(routes_file, route_table(1, {"iris": [backend_entry(backend, 5, 100.0)]}))
    gateway = start_gateway("--routes-file", str(routes_file))

    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        responses = [client.post("/v2/models/iris/infer", content=BODY) for _ in range(10)]

    assert [response.status_code for response in responses] == [200] * 10
    assert backend.closed_unanswered > 0
    assert "retrying on s5 (server 5, version 5)" in gateway.log()
