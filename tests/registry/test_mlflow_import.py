"""Importing whole registered models from a real MLflow sqlite store, twice."""

from __future__ import annotations

import pytest

from audit.models import AuditEntry
from registry.models import Artifact, ModelAlias, ModelVersion, RegisteredModel, VersionTag

pytestmark = pytest.mark.django_db

MLFLOW_MODEL = "breast-cancer-classifier"


def _import(api_client, tracking_uri: str, **extra):
    return api_client.post("/api/v1/imports/", {"tracking_uri": tracking_uri, "mlflow_model": MLFLOW_MODEL, **extra}, format="json")


@pytest.fixture
def imported(api_client, mlflow_two_versions):
    return _import(api_client, mlflow_two_versions)


def _snapshot() -> dict:
    return {
        "models": RegisteredModel.objects.count(),
        "versions": ModelVersion.objects.count(),
        "artifacts": Artifact.objects.count(),
        "aliases": sorted(ModelAlias.objects.values_list("alias", "version__version")),
        "version_tags": VersionTag.objects.count(),
    }


def test_import_returns_201(imported):
    assert imported.status_code == 201, imported.content


def test_import_creates_every_version(imported):
    assert imported.json()["created"] == [1, 2]


def test_import_copies_aliases(imported):
    assert imported.json()["model"]["aliases"] == {"champion": 1, "challenger": 2}


def test_import_copies_model_tags(imported):
    assert imported.json()["model"]["tags"] == {"team": "oncology"}


def test_import_copies_description(imported):
    assert imported.json()["model"]["description"] == "Predicts malignancy from cell measurements."


def test_import_copies_version_tags(imported):
    assert dict(VersionTag.objects.filter(version__version=2).values_list("key", "value")) == {"reviewed": "yes"}


def test_import_copies_run_metrics(imported):
    assert "accuracy" in ModelVersion.objects.get(version=2).metrics


def test_import_copies_run_params(imported):
    assert ModelVersion.objects.get(version=2).params["C"] == "0.1"


def test_import_records_lineage(imported):
    assert ModelVersion.objects.get(version=1).source_uri == f"models:/{MLFLOW_MODEL}/1"


def test_import_twice_returns_200(api_client, mlflow_two_versions, imported):
    assert _import(api_client, mlflow_two_versions).status_code == 200


def test_import_twice_changes_nothing(api_client, mlflow_two_versions, imported):
    before = _snapshot()
    _import(api_client, mlflow_two_versions)
    assert _snapshot() == before


def test_import_twice_reports_existing_versions(api_client, mlflow_two_versions, imported):
    assert _import(api_client, mlflow_two_versions).json()["existing"] == [1, 2]


def test_import_twice_sets_no_alias_again(api_client, mlflow_two_versions, imported):
    _import(api_client, mlflow_two_versions)
    assert AuditEntry.objects.filter(action="alias.set").count() == 2


def test_import_under_another_name(api_client, mlflow_two_versions):
    response = _import(api_client, mlflow_two_versions, name="bc/prod")
    assert response.json()["model"]["name"] == "bc/prod"


def test_import_unknown_model_names_field(api_client, mlflow_two_versions):
    response = api_client.post("/api/v1/imports/", {"tracking_uri": mlflow_two_versions, "mlflow_model": "nope"}, format="json")
    assert response.json()["error"]["field"] == "mlflow_model"


def test_import_unknown_model_stores_nothing(api_client, mlflow_two_versions):
    api_client.post("/api/v1/imports/", {"tracking_uri": mlflow_two_versions, "mlflow_model": "nope"}, format="json")
    assert not RegisteredModel.objects.exists()


def test_import_unreachable_store_returns_400(api_client, tmp_path):
    response = _import(api_client, f"sqlite:///{tmp_path}/missing/dir/mlflow.db")
    assert response.status_code == 400


# One version at a time through the version list


def _import_one(api_client, uri: str, tracking_uri: str):
    return api_client.post("/api/v1/models/bc/versions/", {"mlflow_uri": uri, "tracking_uri": tracking_uri}, format="json")


def test_version_import_twice_returns_same_version(api_client, mlflow_two_versions):
    first = _import_one(api_client, f"models:/{MLFLOW_MODEL}/1", mlflow_two_versions).json()["id"]
    assert _import_one(api_client, f"models:/{MLFLOW_MODEL}/1", mlflow_two_versions).json()["id"] == first


def test_version_import_twice_returns_200(api_client, mlflow_two_versions):
    _import_one(api_client, f"models:/{MLFLOW_MODEL}/1", mlflow_two_versions)
    assert _import_one(api_client, f"models:/{MLFLOW_MODEL}/1", mlflow_two_versions).status_code == 200


def test_version_import_by_alias_finds_version_import(api_client, mlflow_two_versions):
    _import_one(api_client, f"models:/{MLFLOW_MODEL}/1", mlflow_two_versions)
    _import_one(api_client, f"models:/{MLFLOW_MODEL}@champion", mlflow_two_versions)
    assert ModelVersion.objects.count() == 1


def test_run_import_twice_stores_one_version(api_client, mlflow_two_versions):
    run_id = _import_one(api_client, f"models:/{MLFLOW_MODEL}/2", mlflow_two_versions).json()["mlflow_run_id"]
    for _ in range(2):
        _import_one(api_client, f"runs:/{run_id}/model", mlflow_two_versions)
    assert ModelVersion.objects.filter(source_uri=f"runs:/{run_id}/model").count() == 1
