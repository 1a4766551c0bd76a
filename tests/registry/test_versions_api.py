"""Tags, aliases, archiving, deletion and comparison of versions through the API."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from deployments.models import Endpoint, Environment, ModelServer, Release, RouteBackend
from registry.models import Artifact, ModelVersion
from tests.registry.conftest import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(registered):
    return registered("churn")


@pytest.fixture
def serving_endpoint(version):
    """Endpoint 'churn-live' whose ready server gets all traffic from version 1."""
    environment, _ = Environment.objects.get_or_create(name="development")
    endpoint = Endpoint.objects.create(name="churn-live", environment=environment)
    server = ModelServer.objects.create(endpoint=endpoint, version=version, runtime="local", state="ready")
    RouteBackend.objects.create(endpoint=endpoint, server=server, weight=100, role="stable")
    return endpoint


def _url(version, suffix: str = "") -> str:
    return f"/api/v1/models/{version.model_id}/versions/{version.version}/{suffix}"


def test_set_version_tag_returns_value(api_client, version):
    response = api_client.put(_url(version, "tags/"), {"key": "dataset", "value": "2026-11"}, format="json")
    assert response.json() == {"key": "dataset", "value": "2026-11"}


def test_set_version_tag_shows_in_version(api_client, version):
    api_client.put(_url(version, "tags/"), {"key": "dataset", "value": "2026-11"}, format="json")
    assert api_client.get(_url(version)).json()["tags"] == {"dataset": "2026-11"}


def test_delete_missing_version_tag_returns_404(api_client, version):
    response = api_client.delete(_url(version, "tags/") + "?key=nope")
    assert response.status_code == 404


def test_delete_tag_without_key_names_field(api_client, version):
    response = api_client.delete(_url(version, "tags/"))
    assert response.json()["error"]["field"] == "key"


def test_model_tag_with_slash_key_round_trips(api_client, version):
    api_client.put(f"/api/v1/models/{version.model_id}/tags/", {"key": "owner/team", "value": "risk"}, format="json")
    api_client.delete(f"/api/v1/models/{version.model_id}/tags/?key=owner%2Fteam")
    assert api_client.get(f"/api/v1/models/{version.model_id}/").json()["tags"] == {}


def test_tag_change_is_audited(api_client, user, version):
    api_client.put(_url(version, "tags/"), {"key": "dataset", "value": "2026-11"}, format="json")
    assert AuditEntry.objects.filter(action="modelversion.tag.set", actor=user).count() == 1


def test_alias_move_records_actor(api_client, user, registered, version):
    registered("churn")
    api_client.put(f"/api/v1/models/{version.model_id}/aliases/champion/", {"version": 1}, format="json")
    api_client.put(f"/api/v1/models/{version.model_id}/aliases/champion/", {"version": 2}, format="json")
    entry = AuditEntry.objects.filter(action="alias.set").order_by("-id").first()
    assert (entry.actor, entry.data["from_version"], entry.data["to_version"]) == (user, 1, 2)


def test_alias_set_twice_records_once(api_client, version):
    for _ in range(2):
        api_client.put(f"/api/v1/models/{version.model_id}/aliases/champion/", {"version": 1}, format="json")
    assert AuditEntry.objects.filter(action="alias.set").count() == 1


def test_alias_with_capitals_returns_400(api_client, version):
    response = api_client.put(f"/api/v1/models/{version.model_id}/aliases/Champion/", {"version": 1}, format="json")
    assert response.json()["error"]["field"] == "alias"


def test_archive_sets_flag(api_client, version):
    response = api_client.patch(_url(version), {"archived": True}, format="json")
    assert response.json()["archived"] is True


def test_archived_version_is_not_deployable(api_client, version):
    api_client.patch(_url(version), {"archived": True}, format="json")
    assert not ModelVersion.objects.deployable().filter(pk=version.pk).exists()


def test_archived_version_is_refused_for_release(api_client, version):
    Environment.objects.get_or_create(name="development")
    api_client.patch(_url(version), {"archived": True}, format="json")
    body = {"endpoint": "churn", "environment": "development", "model_uri": "models:/churn/1"}
    assert "archived" in api_client.post("/api/v1/releases/", body, format="json").json()["error"]["message"]


def test_update_description_is_stored(api_client, version):
    api_client.patch(_url(version), {"description": "Retrained on November data"}, format="json")
    assert api_client.get(_url(version)).json()["description"] == "Retrained on November data"


def test_delete_served_version_returns_409(api_client, version, serving_endpoint):
    assert api_client.delete(_url(version)).status_code == 409


def test_delete_served_version_names_endpoint(api_client, version, serving_endpoint):
    response = api_client.delete(_url(version))
    assert response.json()["error"]["details"]["endpoints"] == ["churn-live"]


def test_delete_served_version_keeps_it(api_client, version, serving_endpoint):
    api_client.delete(_url(version))
    assert ModelVersion.objects.filter(pk=version.pk).exists()


def test_delete_version_in_release_history_returns_409(api_client, version):
    environment, _ = Environment.objects.get_or_create(name="development")
    endpoint = Endpoint.objects.create(name="old", environment=environment)
    release = Release.objects.create(endpoint=endpoint, version=version, state="rolled_back")
    response = api_client.delete(_url(version))
    assert response.json()["error"]["details"]["releases"] == [release.pk]


def test_delete_unused_version_returns_204(api_client, version):
    assert api_client.delete(_url(version)).status_code == 204


def test_delete_last_user_removes_artifact(api_client, version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete(_url(version))
    assert not Artifact.objects.exists()


def test_delete_last_user_removes_artifact_file(api_client, version, django_capture_on_commit_callbacks):
    storage, name = version.artifact.file.storage, version.artifact.file.name
    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete(_url(version))
    assert not storage.exists(name)


def test_delete_keeps_artifact_shared_with_another_version(api_client, registered, version, django_capture_on_commit_callbacks):
    registered("churn")
    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete(_url(version))
    assert Artifact.objects.count() == 1


def test_delete_is_audited(api_client, user, version):
    api_client.delete(_url(version))
    assert AuditEntry.objects.filter(action="version.delete", actor=user, model="churn").count() == 1


def test_filter_versions_by_alias(api_client, registered, version):
    registered("churn")
    api_client.put(f"/api/v1/models/{version.model_id}/aliases/champion/", {"version": 1}, format="json")
    response = api_client.get(f"/api/v1/models/{version.model_id}/versions/", {"alias": "champion"})
    assert [row["version"] for row in response.json()["results"]] == [1]


def test_filter_models_by_flavor(api_client, registered):
    registered("churn")
    response = api_client.get("/api/v1/models/", {"flavor": "sklearn"})
    assert [row["name"] for row in response.json()["results"]] == ["churn"]


def test_filter_models_by_unknown_flavor_is_empty(api_client, registered):
    registered("churn")
    assert api_client.get("/api/v1/models/", {"flavor": "pytorch"}).json()["results"] == []


def test_filter_models_by_tag_value(api_client, version):
    api_client.put(f"/api/v1/models/{version.model_id}/tags/", {"key": "team", "value": "risk"}, format="json")
    response = api_client.get("/api/v1/models/", {"tag": "team=risk"})
    assert [row["name"] for row in response.json()["results"]] == ["churn"]


def test_filter_models_by_status(api_client, version):
    assert api_client.get("/api/v1/models/", {"status": "ready"}).json()["results"] == []


def test_filter_with_unknown_status_returns_400(api_client):
    assert api_client.get("/api/v1/models/", {"status": "done"}).status_code == 400


# Comparison


@pytest.fixture
def two_signatures(api_client, demo_model_zip, nullable_model_zip):
    upload(api_client, "mixed", demo_model_zip.read_bytes())
    upload(api_client, "mixed", nullable_model_zip.read_bytes())
    ModelVersion.objects.filter(model__name="mixed", version=1).update(metrics={"accuracy": 0.9, "f1": 0.8})
    ModelVersion.objects.filter(model__name="mixed", version=2).update(metrics={"accuracy": 0.95})


def _compare(api_client, base: str, candidate: str) -> dict:
    return api_client.get("/api/v1/compare/", {"base": base, "candidate": candidate}).json()


def test_compare_lists_removed_column(api_client, two_signatures):
    changes = _compare(api_client, "models:/mixed/1", "models:/mixed/2")["input_changes"]
    assert "column 'mean radius' was removed" in changes


def test_compare_lists_added_optional_column(api_client, two_signatures):
    changes = _compare(api_client, "models:/mixed/1", "models:/mixed/2")["input_changes"]
    assert "column 'age' was added (long, optional)" in changes


def test_compare_marks_incompatible(api_client, two_signatures):
    assert _compare(api_client, "models:/mixed/1", "models:/mixed/2")["compatible"] is False


def test_compare_same_version_is_compatible(api_client, two_signatures):
    assert _compare(api_client, "models:/mixed/1", "models:/mixed/1")["compatible"] is True


def test_compare_metric_delta(api_client, two_signatures):
    metrics = {row["name"]: row for row in _compare(api_client, "models:/mixed/1", "models:/mixed/2")["metrics"]}
    assert metrics["accuracy"]["delta"] == pytest.approx(0.05)


def test_compare_metric_missing_on_one_side_has_no_delta(api_client, two_signatures):
    metrics = {row["name"]: row for row in _compare(api_client, "models:/mixed/1", "models:/mixed/2")["metrics"]}
    assert metrics["f1"]["delta"] is None


def test_compare_resolves_alias(api_client, two_signatures):
    model_id = ModelVersion.objects.get(model__name="mixed", version=2).model_id
    api_client.put(f"/api/v1/models/{model_id}/aliases/challenger/", {"version": 2}, format="json")
    assert _compare(api_client, "models:/mixed/1", "models:/mixed@challenger")["candidate"] == "models:/mixed/2"


def test_compare_unknown_alias_names_field(api_client, two_signatures):
    response = api_client.get("/api/v1/compare/", {"base": "models:/mixed/1", "candidate": "models:/mixed@nope"})
    assert response.json()["error"]["field"] == "candidate"


def test_compare_malformed_reference_returns_400(api_client):
    response = api_client.get("/api/v1/compare/", {"base": "mixed:1", "candidate": "models:/mixed/1"})
    assert response.json()["error"]["field"] == "base"


def test_model_description_change_is_audited(api_client, user, version):
    api_client.patch(f"/api/v1/models/{version.model_id}/", {"description": "Churn in 30 days"}, format="json")
    entry = AuditEntry.objects.get(action="model.update")
    assert entry.data == {"from_description": "", "to_description": "Churn in 30 days"}
