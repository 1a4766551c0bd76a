"""The routes gateways call: token check, conditional polling and counter reports."""

import pytest

from deployments.models import Endpoint, GatewayInstance, TrafficSample
from deployments.services import routing
from deployments.services.servers import create_server

pytestmark = pytest.mark.django_db

ROUTES = "/api/v1/gateway/routes"
REPORTS = "/api/v1/gateway/reports"
AUTH = {"HTTP_AUTHORIZATION": "Bearer test-gateway-token"}


@pytest.fixture
def routed(environment, model_version):
    endpoint = Endpoint.objects.create(name="churn", environment=environment, sticky_header="x-user")
    server = create_server(endpoint, model_version)
    server.url = "http://127.0.0.1:41000"
    server.save()
    routing.set_traffic(endpoint, {server: 100}, roles={})
    return server


def test_routes_without_token_returns_401(client):
    assert client.get(ROUTES).status_code == 401


def test_routes_with_wrong_token_returns_401(client):
    assert client.get(ROUTES, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401


def test_routes_returns_backend_url(client, routed):
    table = client.get(ROUTES, **AUTH).json()
    assert table["endpoints"]["churn"]["backends"][0]["url"] == "http://127.0.0.1:41000"


def test_routes_returns_weight(client, routed):
    table = client.get(ROUTES, **AUTH).json()
    assert table["endpoints"]["churn"]["backends"][0]["weight"] == 100.0


def test_routes_returns_sticky_header(client, routed):
    table = client.get(ROUTES, **AUTH).json()
    assert table["endpoints"]["churn"]["sticky_header"] == "x-user"


def test_routes_etag_is_revision(client, routed):
    response = client.get(ROUTES, **AUTH)
    assert response["ETag"] == f'"{routing.current_revision()}"'


def test_routes_unchanged_revision_returns_304(client, routed):
    etag = client.get(ROUTES, **AUTH)["ETag"]
    assert client.get(ROUTES, HTTP_IF_NONE_MATCH=etag, **AUTH).status_code == 304


def test_routes_poll_records_gateway_revision(client, routed):
    etag = client.get(ROUTES, **AUTH)["ETag"]
    client.get(ROUTES, HTTP_IF_NONE_MATCH=etag, HTTP_X_GATEWAY_INSTANCE="host:1", **AUTH)
    assert GatewayInstance.objects.get(instance="host:1").revision == routing.current_revision()


def test_gateways_have_revision_after_poll(client, routed):
    etag = client.get(ROUTES, **AUTH)["ETag"]
    client.get(ROUTES, HTTP_IF_NONE_MATCH=etag, HTTP_X_GATEWAY_INSTANCE="host:1", **AUTH)
    assert routing.gateways_have(routing.current_revision())


def test_gateways_lagging_do_not_have_revision(client, routed):
    client.get(ROUTES, HTTP_IF_NONE_MATCH='"0"', HTTP_X_GATEWAY_INSTANCE="host:1", **AUTH)
    assert not routing.gateways_have(routing.current_revision())


def _report(**overrides):
    counter = {
        "endpoint": "churn", "server_id": 1, "version": 2, "requests": 10, "server_errors": 1,
        "client_errors": 0, "latency_sum": 0.05, "latency_buckets": [[0.005, 9], [0.01, 10]],
    }
    return {"instance": "host:1", "revision": 3, "started_at": "2026-12-04T20:00:00Z", "counters": [counter], **overrides}


def test_report_stores_samples(client):
    client.post(REPORTS, _report(), content_type="application/json", **AUTH)
    assert TrafficSample.objects.get().requests == 10


def test_report_without_token_returns_401(client):
    assert client.post(REPORTS, _report(), content_type="application/json").status_code == 401


def test_report_invalid_json_returns_400(client):
    response = client.post(REPORTS, "{not json", content_type="application/json", **AUTH)
    assert response.status_code == 400


def test_report_bad_time_names_field(client):
    response = client.post(REPORTS, _report(started_at="yesterday"), content_type="application/json", **AUTH)
    assert response.json()["error"]["field"] == "started_at"


def test_report_bad_counter_stores_nothing(client):
    client.post(REPORTS, _report(counters=[{"endpoint": "churn"}]), content_type="application/json", **AUTH)
    assert not TrafficSample.objects.exists()
