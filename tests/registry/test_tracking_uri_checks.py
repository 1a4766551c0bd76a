"""Tracking URIs that MLflow cannot use: a closed port on 127.0.0.1 and sqlite files that do not exist."""

from __future__ import annotations

import os
import time

import pytest

from mlops_portal.errors import InvalidInput
from registry.models import ModelVersion, RegisteredModel
from registry.services import mlflow_source
from tests.integration.conftest import free_port

pytestmark = pytest.mark.django_db

MLFLOW_MODEL = "breast-cancer-classifier"
# A closed port on 127.0.0.1 must fail well inside this many seconds; MLflow's
# default retries took about four minutes.
FAST_FAILURE_SECONDS = 5.0


def _register(api_client, tracking_uri: str):
    body = {"mlflow_uri": "models:/churn@champion", "tracking_uri": tracking_uri}
    return api_client.post("/api/v1/models/churn/versions/", body, format="json")


def _import(api_client, tracking_uri: str):
    body = {"mlflow_model": MLFLOW_MODEL, "tracking_uri": tracking_uri}
    return api_client.post("/api/v1/imports/", body, format="json")


@pytest.fixture
def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


# A tracking server that is down


def test_register_closed_port_returns_400(api_client, closed_url):
    assert _register(api_client, closed_url).status_code == 400


def test_register_closed_port_names_tracking_uri(api_client, closed_url):
    assert _register(api_client, closed_url).json()["error"]["field"] == "tracking_uri"


def test_register_closed_port_says_connection_refused(api_client, closed_url):
    expected = f"Cannot connect to the MLflow tracking server at {closed_url} (connection refused); check tracking_uri."
    assert _register(api_client, closed_url).json()["error"]["message"] == expected


def test_register_closed_port_fails_fast(api_client, closed_url):
    started = time.monotonic()
    _register(api_client, closed_url)
    assert time.monotonic() - started < FAST_FAILURE_SECONDS


def test_register_closed_port_stores_nothing(api_client, closed_url):
    _register(api_client, closed_url)
    assert not RegisteredModel.objects.exists()


def test_import_closed_port_names_tracking_uri(api_client, closed_url):
    assert _import(api_client, closed_url).json()["error"]["field"] == "tracking_uri"


def test_import_closed_port_says_connection_refused(api_client, closed_url):
    assert "(connection refused)" in _import(api_client, closed_url).json()["error"]["message"]


def test_import_closed_port_fails_fast(api_client, closed_url):
    started = time.monotonic()
    _import(api_client, closed_url)
    assert time.monotonic() - started < FAST_FAILURE_SECONDS


def test_import_closed_database_port_names_database(api_client):
    tracking_uri = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/mlflow"
    assert "Cannot connect to the MLflow database at" in _import(api_client, tracking_uri).json()["error"]["message"]


def test_import_password_is_not_echoed(api_client):
    tracking_uri = f"http://user:secret-password@127.0.0.1:{free_port()}"
    assert "secret-password" not in _import(api_client, tracking_uri).json()["error"]["message"]


# MLflow's own client, past the connection check: the limits from settings hold


def _client_call(closed_url: str) -> None:
    with mlflow_source.mlflow_errors("models:/churn@champion", closed_url):
        mlflow_source.client_for(closed_url).get_model_version_by_alias("churn", "champion")


def test_mlflow_client_closed_port_fails_fast(closed_url):
    started = time.monotonic()
    with pytest.raises(InvalidInput):
        _client_call(closed_url)
    assert time.monotonic() - started < FAST_FAILURE_SECONDS


def test_mlflow_client_closed_port_names_tracking_uri(closed_url):
    with pytest.raises(InvalidInput) as raised:
        _client_call(closed_url)
    assert raised.value.field == "tracking_uri"


def test_mlflow_client_closed_port_says_connection_refused(closed_url):
    with pytest.raises(InvalidInput) as raised:
        _client_call(closed_url)
    assert "(connection refused)" in raised.value.message


def test_settings_set_short_mlflow_retries():
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"


# sqlite tracking URIs


def test_register_relative_sqlite_path_explains_working_directory(api_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    expected = (
        f"No MLflow database at {tmp_path / 'mlflow.db'}; relative sqlite paths resolve against "
        f"the portal's working directory {tmp_path}."
    )
    assert _register(api_client, "sqlite:///mlflow.db").json()["error"]["message"] == expected


def test_register_relative_sqlite_path_names_tracking_uri(api_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert _register(api_client, "sqlite:///mlflow.db").json()["error"]["field"] == "tracking_uri"


def test_register_relative_sqlite_path_creates_no_file(api_client, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _register(api_client, "sqlite:///mlflow.db")
    assert list(tmp_path.iterdir()) == []


def test_import_missing_sqlite_file_returns_400(api_client, tmp_path):
    assert _import(api_client, f"sqlite:///{tmp_path}/mlflow.db").status_code == 400


def test_import_missing_sqlite_file_names_path(api_client, tmp_path):
    message = _import(api_client, f"sqlite:///{tmp_path}/mlflow.db").json()["error"]["message"]
    assert message.startswith(f"No MLflow database at {tmp_path / 'mlflow.db'};")


def test_import_missing_sqlite_folder_creates_no_folder(api_client, tmp_path):
    _import(api_client, f"sqlite:///{tmp_path}/missing/dir/mlflow.db")
    assert not (tmp_path / "missing").exists()


def test_import_in_memory_sqlite_names_tracking_uri(api_client):
    assert _import(api_client, "sqlite://").json()["error"]["field"] == "tracking_uri"


def test_import_existing_sqlite_store_still_works(api_client, mlflow_two_versions):
    _import(api_client, mlflow_two_versions)
    assert ModelVersion.objects.count() == 2



def test_import_ignores_global_mlflow_tracking_uri(api_client, mlflow_two_versions, closed_url):
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(closed_url)
    try:
        _import(api_client, mlflow_two_versions)
    finally:
        mlflow.set_tracking_uri(previous)
    assert ModelVersion.objects.count() == 2
