"""Integration tests: route table changes from the portal and from a routes file."""

from __future__ import annotations

import threading
import time

import httpx

from tests.gateway.servers import TOKEN, backend_entry, route_table, wait_until, write_table

BODY = b'{"dataframe_records": [{"sepal_length": 5.1}]}'
PORTAL_TOKEN = {"GATEWAY_TOKEN": TOKEN}


def test_new_weight_reaches_every_worker_within_1s(start_backend, start_portal, start_gateway):
    stable = start_backend("stable", 1)
    candidate = start_backend("candidate", 2)
    portal = start_portal(route_table(1, {"iris": [
        backend_entry(stable, 1, 100.0), backend_entry(candidate, 2, 0.0, role="candidate"),
    ]}))
    gateway = start_gateway(
        "--portal-url", portal.url, "--workers", "2", "--report-interval", "0.1", env=PORTAL_TOKEN,
    )
    wait_until(lambda: len(portal.latest_reports()) == 2, 10)
    instances = set(portal.latest_reports())

    published = portal.set_table(route_table(2, {"iris": [
        backend_entry(stable, 1, 0.0), backend_entry(candidate, 2, 100.0, role="candidate"),
    ]}))
    applied = {
        instance: wait_until(lambda instance=instance: portal.first_report_with(instance, 2), 5)
        for instance in instances
    }
    # Fresh connections, so that the requests can land on either worker.
    versions = {httpx.post(gateway.url + "/v2/models/iris/infer", content=BODY).headers["x-model-version"]
                for _ in range(40)}

    assert len(instances) == 2
    for instance, applied_at in applied.items():
        assert applied_at is not None, f"{instance} never reported revision 2"
        assert applied_at - published <= 1.0, f"{instance} took {applied_at - published:.2f} s"
    assert versions == {"2"}


def test_table_change_under_load_no_failures(start_backend, start_portal, start_gateway):
    old = start_backend("old", 1)
    new = start_backend("new", 2)
    portal = start_portal(route_table(1, {"iris": [backend_entry(old, 1, 100.0)]}))
    gateway = start_gateway("--portal-url", portal.url, "--workers", "2", env=PORTAL_TOKEN)
    wait_until(lambda: len(portal.instances()) == 2, 10)

    outcomes: list[tuple[int, str]] = []
    failures: list[str] = []
    stop = threading.Event()

    def send_continuously() -> None:
        with httpx.Client(base_url=gateway.url, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/endpoints/iris/invocations", content=BODY)
                except httpx.HTTPError as error:
                    failures.append(repr(error))
                    continue
                outcomes.append((response.status_code, response.headers.get("x-model-version", "")))

    clients = [threading.Thread(target=send_continuously) for _ in range(4)]
    for client in clients:
        client.start()

    try:
        time.sleep(0.5)

        # Switch all traffic to the new version, wait until both workers use it,
        # then stop the old server as a release controller would.
        portal.set_table(route_table(2, {"iris": [backend_entry(new, 2, 100.0)]}))
        switched = wait_until(
            lambda: all(portal.first_received(instance, 2) for instance in portal.instances()), 5
        )
        time.sleep(0.3)
        old.stop()
        time.sleep(0.7)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=15)

    statuses = {status for status, _ in outcomes}
    versions = [version for _, version in outcomes]

    assert switched
    assert failures == []
    assert statuses == {200}
    assert "1" in versions
    assert set(versions[-20:]) == {"2"}
    assert len(outcomes) > 100


def test_portal_down_keeps_last_table(start_backend, start_portal, start_gateway):
    backend = start_backend("stable", 1)
    portal = start_portal(route_table(1, {"iris": [backend_entry(backend, 1, 100.0)]}))
    gateway = start_gateway("--portal-url", portal.url, env=PORTAL_TOKEN)

    portal.failing = True
    time.sleep(0.6)
    during_failure = httpx.post(gateway.url + "/v2/models/iris/infer", content=BODY)
    portal.failing = False
    portal.set_table(route_table(2, {"iris": [backend_entry(backend, 1, 100.0)], "wine": []}))
    recovered = wait_until(
        lambda: httpx.post(gateway.url + "/v2/models/wine/infer", content=BODY).status_code == 503, 5
    )
    log = gateway.log()

    assert during_failure.status_code == 200
    assert recovered
    assert "route table poll of" in log
    assert "failed: HTTP 500" in log
    assert log.count("failed: HTTP 500") < 5
    assert "succeeded again after" in log


def test_portal_invalid_table_keeps_last(start_backend, start_portal, start_gateway):
    backend = start_backend("stable", 1)
    portal = start_portal(route_table(1, {"iris": [backend_entry(backend, 1, 100.0)]}))
    gateway = start_gateway("--portal-url", portal.url, env=PORTAL_TOKEN)

    portal.set_table(route_table(2, {"iris": [backend_entry(backend, 1, 60.0)]}))
    logged = wait_until(lambda: "weights must add up to 100, got 60.0" in gateway.log(), 5)
    response = httpx.post(gateway.url + "/v2/models/iris/infer", content=BODY)

    assert logged
    assert response.status_code == 200
    assert httpx.get(gateway.url + "/v2/health/ready").json()["revision"] == 1


def test_table_change_logged_with_ids(start_backend, start_portal, start_gateway):
    stable = start_backend("stable", 3)
    candidate = start_backend("candidate", 4)
    portal = start_portal(route_table(11, {"iris": [backend_entry(stable, 9, 100.0)]}))
    gateway = start_gateway("--portal-url", portal.url, env=PORTAL_TOKEN)

    portal.set_table(route_table(12, {"iris": [
        backend_entry(stable, 9, 90.0), backend_entry(candidate, 11, 10.0, role="candidate"),
    ]}))
    logged = wait_until(lambda: "route table revision 12 applied (was 11)" in gateway.log(), 5)
    log = gateway.log()

    assert logged
    assert "changed iris: s9 (server 9, version 3, 90.0 %), s11 (server 11, version 4, 10.0 %)" in log
    assert TOKEN not in log


def test_wrong_token_logged_and_not_ready(start_portal, start_gateway):
    portal = start_portal(route_table(1, {}))
    gateway = start_gateway("--portal-url", portal.url, env={"GATEWAY_TOKEN": "wrong-token"}, wait=False)

    logged = wait_until(lambda: "failed: HTTP 401" in gateway.log(), 10)
    ready = httpx.get(gateway.url + "/v2/health/ready")

    assert logged
    assert ready.status_code == 503
    assert "wrong-token" not in gateway.log()


def test_routes_file_reload(tmp_path, start_backend, start_gateway):
    first = start_backend("first", 1)
    second = start_backend("second", 2)
    routes_file = tmp_path / "routes.json"
    write_table(routes_file, route_table(1, {"iris": [backend_entry(first, 1, 100.0)]}))
    gateway = start_gateway("--routes-file", str(routes_file))

    write_table(routes_file, route_table(2, {"iris": [backend_entry(second, 2, 100.0)]}))
    switched = wait_until(
        lambda: httpx.post(gateway.url + "/v2/models/iris/infer", content=BODY).headers["x-model-version"] == "2",
        5,
    )

    assert switched


def test_routes_file_invalid_keeps_last(tmp_path, start_backend, start_gateway):
    backend = start_backend("first", 1)
    routes_file = tmp_path / "routes.json"
    write_table(routes_file, route_table(1, {"iris": [backend_entry(backend, 1, 100.0)]}))
    gateway = start_gateway("--routes-file", str(routes_file))

    routes_file.write_text('{"revision": 2, "endpoints": ')
    logged = wait_until(lambda: "keeping revision 1" in gateway.log(), 5)
    response = httpx.post(gateway.url + "/v2/models/iris/infer", content=BODY)

    assert logged
    assert response.status_code == 200
