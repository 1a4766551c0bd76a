"""Registry write requests reject fields they cannot set, instead of ignoring them."""

from __future__ import annotations

import pytest
from django.http import QueryDict
from rest_framework import serializers

from mlops_portal.serializers import RejectUnknownFieldsMixin
from registry.models import ModelAlias, RegisteredModel
from tests.registry.conftest import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(registered):
    return registered("churn")


def _version_url(version, suffix: str = "") -> str:
    return f"/api/v1/models/{version.model_id}/versions/{version.version}/{suffix}"


def _model_url(version, suffix: str = "") -> str:
    return f"/api/v1/models/{version.model_id}/{suffix}"


def _error(response) -> dict:
    return response.json()["error"]


# Version PATCH


def test_version_patch_version_returns_400(api_client, version):
    assert api_client.patch(_version_url(version), {"version": 7}, format="json").status_code == 400


def test_version_patch_version_names_field(api_client, version):
    assert _error(api_client.patch(_version_url(version), {"version": 7}, format="json"))["field"] == "version"


def test_version_patch_version_lists_writable_fields(api_client, version):
    response = api_client.patch(_version_url(version), {"version": 7}, format="json")
    message = _error(response)["message"]
    assert message == "version: Unknown field; check its spelling. This request accepts only description, archived."


def test_version_patch_with_unknown_field_changes_nothing(api_client, version):
    api_client.patch(_version_url(version), {"description": "new", "version": 7}, format="json")
    version.refresh_from_db()
    assert version.description == ""


def test_version_patch_known_fields_still_work(api_client, version):
    response = api_client.patch(_version_url(version), {"description": "new"}, format="json")
    assert response.status_code == 200


# Model create and PATCH


def test_model_create_read_only_field_names_field(api_client):
    response = api_client.post("/api/v1/models/", {"name": "fraud", "owner": "eve"}, format="json")
    assert _error(response)["field"] == "owner"


def test_model_create_read_only_field_says_read_only(api_client):
    response = api_client.post("/api/v1/models/", {"name": "fraud", "owner": "eve"}, format="json")
    assert _error(response)["message"] == "owner: This field is read-only. This request accepts only name, description."


def test_model_create_read_only_field_stores_nothing(api_client):
    api_client.post("/api/v1/models/", {"name": "fraud", "owner": "eve"}, format="json")
    assert not RegisteredModel.objects.exists()


def test_model_create_known_fields_still_work(api_client):
    response = api_client.post("/api/v1/models/", {"name": "fraud", "description": "d"}, format="json")
    assert response.status_code == 201


def test_model_patch_name_names_field(api_client, version):
    response = api_client.patch(_model_url(version), {"name": "renamed", "description": "d"}, format="json")
    assert _error(response)["field"] == "name"


# Aliases, tags, import and registration


def test_alias_put_unknown_field_names_field(api_client, version):
    response = api_client.put(_model_url(version, "aliases/champion/"), {"version": 1, "model": "x"}, format="json")
    assert _error(response)["field"] == "model"


def test_alias_put_unknown_field_sets_no_alias(api_client, version):
    api_client.put(_model_url(version, "aliases/champion/"), {"version": 1, "model": "x"}, format="json")
    assert not ModelAlias.objects.exists()


def test_tag_put_extra_field_names_field(api_client, version):
    body = {"key": "team", "value": "oncology", "color": "red"}
    assert _error(api_client.put(_version_url(version, "tags/"), body, format="json"))["field"] == "color"


def test_tag_put_plain_object_shows_expected_body(api_client, version):
    response = api_client.put(_model_url(version, "tags/"), {"team": "oncology"}, format="json")
    message = _error(response)["message"]
    expected = (
        'key: This field is missing. Send one tag per request as {"key": "team", "value": "oncology"}, '
        'not {"team": "oncology"}.'
    )
    assert message == expected


def test_tag_put_plain_object_names_key_field(api_client, version):
    response = api_client.put(_model_url(version, "tags/"), {"team": "oncology"}, format="json")
    assert _error(response)["field"] == "key"


def test_tag_put_plain_object_sets_no_tag(api_client, version):
    api_client.put(_model_url(version, "tags/"), {"team": "oncology"}, format="json")
    assert not version.model.tags.exists()


def test_import_misspelled_field_names_field(api_client):
    body = {"tracking_uri": "sqlite:////nowhere/mlflow.db", "mlflow_model": "churn", "nmae": "x"}
    assert _error(api_client.post("/api/v1/imports/", body, format="json"))["field"] == "nmae"


def test_upload_extra_form_field_names_field(api_client, demo_model_zip):
    from io import BytesIO

    handle = BytesIO(demo_model_zip.read_bytes())
    handle.name = "model.zip"
    body = {"artifact": handle, "alias": "champion"}
    response = api_client.post("/api/v1/models/churn/versions/", body, format="multipart")
    assert _error(response)["field"] == "alias"


def test_upload_without_extra_fields_still_works(api_client, demo_model_zip):
    assert upload(api_client, "churn", demo_model_zip.read_bytes()).status_code == 201


# The mixin on its own


class _NoteSerializer(RejectUnknownFieldsMixin, serializers.Serializer):
    text = serializers.CharField()
    created = serializers.CharField(read_only=True)


def test_mixin_ignores_csrf_token_of_html_forms():
    form = QueryDict("text=hello&csrfmiddlewaretoken=abc")
    assert _NoteSerializer(data=form).is_valid()


def test_mixin_rejects_read_only_field():
    serializer = _NoteSerializer(data={"text": "hello", "created": "today"})
    serializer.is_valid()
    assert list(serializer.errors) == ["created"]
