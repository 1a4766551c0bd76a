"""A nullable integer column: stored in the signature, shown on the page, and accepted at inference."""

from __future__ import annotations

import json

import pytest

from model_server.loading import load_model
from model_server.payloads import parse_mlflow_json
from registry.models import ModelVersion
from registry.services import validation
from registry.services.artifacts import unpack_artifact
from tests.registry.conftest import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def nullable_version(api_client, nullable_model_zip) -> ModelVersion:
    response = upload(api_client, "nullable", nullable_model_zip.read_bytes())
    return ModelVersion.objects.get(pk=response.json()["id"])


def _column(version: ModelVersion, name: str) -> dict:
    return next(column for column in version.signature["inputs"] if column["name"] == name)


def test_signature_keeps_long_type(nullable_version):
    assert _column(nullable_version, "age")["type"] == "long"


def test_signature_keeps_optional_flag(nullable_version):
    assert _column(nullable_version, "age")["required"] is False


def test_version_page_shows_optional_column(client, user, nullable_version):
    client.force_login(user)
    page = client.get(f"/models/{nullable_version.model_id}/versions/1/").content.decode()
    assert "<tr><td>age</td><td>long</td><td>no</td></tr>" in page


def test_load_check_marks_version_ready(nullable_version):
    assert validation.validate_version(nullable_version.pk) == ModelVersion.Status.READY


def test_stored_model_predicts_with_missing_ages(nullable_version):
    """Load the stored artifact as the model server does and predict rows whose age is null."""
    model = load_model(unpack_artifact(nullable_version.artifact))
    body = json.dumps({"dataframe_split": {"columns": ["age", "income"], "data": [[None, 65.0], [40, 35.0], [None, 35.0]]}})
    model_input, params = parse_mlflow_json(body.encode(), model.signature)
    assert list(model.predict(model_input, params)) == [1, 0, 0]
