"""Creating releases through the API: what is accepted, and the errors for what is not."""

import pytest

from deployments.models import Endpoint, Release, RouteBackend
from deployments.services import routing
from deployments.services.servers import create_server

pytestmark = pytest.mark.django_db

URL = "/api/v1/releases/"


def _body(**overrides):
    return {"endpoint": "churn", "environment": "development", "model": "churn", "version": 2, **overrides}


def test_create_release_returns_201(api_client, environment, model_version):
    response = api_client.post(URL, _body(), format="json")
    assert response.status_code == 201, response.content


def test_create_release_starts_approved_without_approval(api_client, environment, model_version):
    response = api_client.post(URL, _body(), format="json")
    assert response.json()["state"] == "approved"


def test_create_release_in_production_waits_for_approval(api_client, production, model_version):
    response = api_client.post(URL, _body(environment="production"), format="json")
    assert response.json()["state"] == "awaiting_approval"


def test_create_release_creates_endpoint(api_client, environment, model_version):
    api_client.post(URL, _body(), format="json")
    assert Endpoint.objects.filter(name="churn", environment=environment).exists()


def test_create_release_records_created_event(api_client, environment, model_version):
    response = api_client.post(URL, _body(), format="json")
    release = Release.objects.get(pk=response.json()["id"])
    assert release.events.filter(kind="created").count() == 1


def test_create_release_by_alias_uri(api_client, environment, model_version):
    from registry.models import ModelAlias

    ModelAlias.objects.create(model=model_version.model, alias="champion", version=model_version)
    response = api_client.post(URL, {"endpoint": "churn", "environment": "development", "model_uri": "models:/churn@champion"}, format="json")
    assert response.json()["version"] == 2


def test_create_release_unknown_model_returns_400(api_client, environment, model_version):
    response = api_client.post(URL, _body(model="nope"), format="json")
    assert response.status_code == 400


def test_create_release_unknown_model_names_model(api_client, environment, model_version):
    response = api_client.post(URL, _body(model="nope"), format="json")
    assert response.json()["error"]["field"] == "model"


def test_create_release_unknown_version_returns_400(api_client, environment, model_version):
    response = api_client.post(URL, _body(version=9), format="json")
    assert response.json()["error"]["field"] == "version"


def test_create_release_unknown_alias_names_alias(api_client, environment, model_version):
    body = {"endpoint": "churn", "environment": "development", "model": "churn", "alias": "gold"}
    response = api_client.post(URL, body, format="json")
    assert (response.status_code, response.json()["error"]["field"]) == (400, "alias")


def test_create_release_unknown_model_uri_returns_400(api_client, environment, model_version):
    body = {"endpoint": "churn", "environment": "development", "model_uri": "models:/nope/1"}
    response = api_client.post(URL, body, format="json")
    assert (response.status_code, response.json()["error"]["field"]) == (400, "model_uri")


def test_create_release_unknown_environment_returns_400(api_client, model_version):
    response = api_client.post(URL, _body(environment="moon"), format="json")
    assert response.status_code == 400


def test_create_endpoint_unknown_environment_message(api_client, environment):
    response = api_client.post("/api/v1/endpoints/", {"name": "scores", "environment": "moon"}, format="json")
    assert response.json()["error"]["message"] == "environment: Environment 'moon' does not exist; GET /api/v1/environments/ lists them."


def test_create_release_unknown_version_message_names_version(api_client, environment, model_version):
    response = api_client.post(URL, _body(version=9), format="json")
    assert response.json()["error"]["message"] == "Model 'churn' has no version 9."


def test_create_release_unknown_environment_names_field(api_client, model_version):
    response = api_client.post(URL, _body(environment="moon"), format="json")
    assert response.json()["error"]["field"] == "environment"


def test_create_release_bad_strategy_names_field(api_client, environment, model_version):
    response = api_client.post(URL, _body(strategy="big-bang"), format="json")
    assert response.json()["error"]["field"] == "strategy"


def test_create_release_both_version_and_alias_returns_400(api_client, environment, model_version):
    response = api_client.post(URL, _body(alias="champion"), format="json")
    assert response.json()["error"]["field"] == "version"


def test_create_release_failed_version_returns_400(api_client, environment, model_version):
    model_version.status = "failed"
    model_version.status_reason = "model_server: failed to load model"
    model_version.save()
    response = api_client.post(URL, _body(), format="json")
    assert "failed its load check" in response.json()["error"]["message"]


def test_create_release_while_one_is_open_returns_409(api_client, environment, model_version):
    api_client.post(URL, _body(), format="json")
    response = api_client.post(URL, _body(version=1), format="json")
    assert response.status_code == 409


def test_create_release_conflict_reports_open_state(api_client, environment, model_version):
    first = api_client.post(URL, _body(), format="json").json()
    response = api_client.post(URL, _body(version=1), format="json")
    assert response.json()["error"]["details"] == {"release": first["id"], "state": "approved"}


def test_rollback_of_unpromoted_release_returns_409(api_client, environment, model_version):
    release = api_client.post(URL, _body(), format="json").json()
    response = api_client.post(f"{URL}{release['id']}/rollback/", {"reason": "regression"}, format="json")
    assert response.json()["error"]["details"]["state"] == "approved"


def test_rollback_missing_release_returns_404(api_client):
    response = api_client.post(f"{URL}999/rollback/", {"reason": "regression"}, format="json")
    assert response.status_code == 404


def test_release_list_requires_authentication(client):
    assert client.get(URL).status_code in (401, 403)


def test_set_traffic_rejects_weights_not_adding_to_100(environment, model_version):
    endpoint = Endpoint.objects.create(name="churn", environment=environment)
    server = create_server(endpoint, model_version)
    with pytest.raises(ValueError, match="add up to 90.0"):
        routing.set_traffic(endpoint, {server: 90}, roles={})


def test_set_traffic_bumps_revision(environment, model_version):
    endpoint = Endpoint.objects.create(name="churn", environment=environment)
    server = create_server(endpoint, model_version)
    before = routing.current_revision()
    routing.set_traffic(endpoint, {server: 100}, roles={})
    assert routing.current_revision() == before + 1


def test_set_traffic_marks_unrouted_server(environment, model_version):
    endpoint = Endpoint.objects.create(name="churn", environment=environment)
    old, new = create_server(endpoint, model_version), create_server(endpoint, model_version)
    routing.set_traffic(endpoint, {old: 100}, roles={})
    revision = routing.set_traffic(endpoint, {new: 100}, roles={})
    old.refresh_from_db()
    assert old.unrouted_revision == revision


def test_set_traffic_replaces_backends(environment, model_version):
    endpoint = Endpoint.objects.create(name="churn", environment=environment)
    old, new = create_server(endpoint, model_version), create_server(endpoint, model_version)
    routing.set_traffic(endpoint, {old: 100}, roles={})
    routing.set_traffic(endpoint, {old: 90, new: 10}, roles={new.pk: RouteBackend.Role.CANDIDATE})
    assert sorted(RouteBackend.objects.values_list("weight", flat=True)) == [10, 90]


def test_create_release_records_audit_entry(api_client, user, environment, model_version):
    from audit.models import AuditEntry

    api_client.post(URL, _body(), format="json")
    assert AuditEntry.objects.filter(action="release.created", actor=user, endpoint="churn").count() == 1
