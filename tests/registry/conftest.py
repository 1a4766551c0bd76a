"""Fixtures for registry tests: stored versions, an MLflow store with two versions, a token client."""

from __future__ import annotations

import io

import httpx
import pytest
from django.db import connection
from rest_framework.authtoken.models import Token

from registry.services import versions

VERSIONS_URL = "/api/v1/models/{model}/versions/"


def upload(client, model: str, content: bytes, filename: str = "model.zip"):
    """POST a zip to the version list of `model` (a name or an id) through the API client."""
    handle = io.BytesIO(content)
    handle.name = filename
    return client.post(VERSIONS_URL.format(model=model), {"artifact": handle}, format="multipart")


@pytest.fixture
def registered(db, demo_model_zip, user):
    """Register the demo model as version 1 of `name` through the service layer."""

    def register(name: str = "churn", path=None):
        return versions.register_from_zip(name, path or demo_model_zip, actor=user)

    return register


@pytest.fixture(scope="session")
def nullable_model_zip(tmp_path_factory):
    """A classifier whose 'age' input is a long column with required false, zipped."""
    from tests.conftest import zip_folder
    from tests.model_server.models import save_nullable_integer_model

    folder = save_nullable_integer_model(tmp_path_factory.mktemp("nullable") / "model")
    return zip_folder(folder, tmp_path_factory.mktemp("nullable-zip") / "nullable.zip")


@pytest.fixture(scope="session")
def mlflow_two_versions(tmp_path_factory) -> str:
    """A real MLflow sqlite store: the demo model as versions 1 and 2, aliases and tags on both levels."""
    from mlflow import MlflowClient

    from mlops_portal import demo

    folder = tmp_path_factory.mktemp("mlflow-two")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    demo.log_and_register(tracking_uri, (folder / "artifacts").as_uri(), regularization=1.0, alias="champion")
    demo.log_and_register(tracking_uri, (folder / "artifacts").as_uri(), regularization=0.1, alias="challenger")

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.set_registered_model_tag(demo.DEMO_MODEL, "team", "oncology")
    client.update_registered_model(demo.DEMO_MODEL, description="Predicts malignancy from cell measurements.")
    client.set_model_version_tag(demo.DEMO_MODEL, "2", "reviewed", "yes")
    return tracking_uri


@pytest.fixture
def live_api(live_server, user):
    """An httpx client for the live server that authenticates with a token."""
    token = Token.objects.create(user=user)
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Token {token.key}"}, timeout=30) as client:
        yield client


@pytest.fixture
def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL); SQLite serialises writers, so races and ties do not show")
