"""Registering versions through the API: uploads, MLflow imports and the bad input around them."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from registry.models import Artifact, ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db

VERSIONS_URL = "/api/v1/models/{name}/versions/"


def _upload(client, name: str, content: bytes, filename: str = "model.zip"):
    upload = io.BytesIO(content)
    upload.name = filename
    return client.post(VERSIONS_URL.format(name=name), {"artifact": upload}, format="multipart")


def _zip_with(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, target)
    return buffer.getvalue()


def _nothing_stored() -> bool:
    return not RegisteredModel.objects.exists() and not ModelVersion.objects.exists() and not Artifact.objects.exists()


def test_upload_valid_zip_returns_201(api_client, demo_model_zip):
    response = _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    assert response.status_code == 201, response.content


def test_upload_valid_zip_numbers_first_version_1(api_client, demo_model_zip):
    response = _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    assert response.json()["version"] == 1


def test_upload_stores_signature_columns(api_client, demo_model_zip):
    response = _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    columns = [column["name"] for column in response.json()["signature"]["inputs"]]
    assert columns[:2] == ["mean radius", "mean texture"]


def test_upload_stores_input_example_as_request(api_client, demo_model_zip):
    response = _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    assert "dataframe_split" in response.json()["input_example"]


def test_upload_stores_sklearn_flavor(api_client, demo_model_zip):
    response = _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    assert "sklearn" in response.json()["flavors"]


def test_upload_same_content_twice_stores_one_artifact(api_client, demo_model_zip):
    _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    assert Artifact.objects.count() == 1


def test_upload_second_version_gets_number_2(api_client, demo_model_zip):
    _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    response = _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    assert response.json()["version"] == 2


def test_upload_zip_with_top_folder_is_accepted(api_client, demo_model_dir, tmp_path):
    from tests.conftest import zip_folder

    archive = zip_folder(demo_model_dir, tmp_path / "nested.zip", prefix="my-model/")
    response = _upload(api_client, "nested", archive.read_bytes())
    assert response.status_code == 201, response.content


def test_upload_corrupt_zip_returns_400(api_client):
    response = _upload(api_client, "broken", b"PK\x03\x04 this is not really a zip")
    assert response.status_code == 400


def test_upload_corrupt_zip_names_artifact_field(api_client):
    response = _upload(api_client, "broken", b"not a zip at all")
    assert response.json()["error"]["field"] == "artifact"


def test_upload_corrupt_zip_stores_nothing(api_client):
    _upload(api_client, "broken", b"not a zip at all")
    assert _nothing_stored()


def test_upload_without_mlmodel_says_what_is_missing(api_client):
    response = _upload(api_client, "no-mlmodel", _zip_with({"model.pkl": b"123"}))
    assert "no MLmodel file" in response.json()["error"]["message"]


def test_upload_without_mlmodel_stores_nothing(api_client):
    _upload(api_client, "no-mlmodel", _zip_with({"model.pkl": b"123"}))
    assert _nothing_stored()


def test_upload_mlmodel_two_folders_deep_names_path(api_client):
    response = _upload(api_client, "deep", _zip_with({"a/b/MLmodel": b"flavors: {}", "a/b/model.pkl": b"123"}))
    assert "MLmodel file at a/b/MLmodel" in response.json()["error"]["message"]


def test_upload_mlmodel_two_folders_deep_says_where_allowed(api_client):
    response = _upload(api_client, "deep", _zip_with({"a/b/MLmodel": b"flavors: {}"}))
    assert "at the root of the archive or inside one top-level folder" in response.json()["error"]["message"]


def test_upload_mlmodel_two_folders_deep_names_artifact_field(api_client):
    response = _upload(api_client, "deep", _zip_with({"a/b/MLmodel": b"flavors: {}"}))
    assert response.json()["error"]["field"] == "artifact"


def test_upload_mlmodel_two_folders_deep_stores_nothing(api_client):
    _upload(api_client, "deep", _zip_with({"a/b/MLmodel": b"flavors: {}"}))
    assert _nothing_stored()


def test_upload_entry_escaping_folder_returns_400(api_client, demo_model_dir):
    entries = {"MLmodel": (demo_model_dir / "MLmodel").read_bytes(), "../../etc/evil.txt": b"x"}
    response = _upload(api_client, "escape", _zip_with(entries))
    assert "points outside the model folder" in response.json()["error"]["message"]


def test_upload_entry_escaping_folder_stores_nothing(api_client, demo_model_dir):
    entries = {"MLmodel": (demo_model_dir / "MLmodel").read_bytes(), "../evil.txt": b"x"}
    _upload(api_client, "escape", _zip_with(entries))
    assert _nothing_stored()


def test_upload_absolute_entry_returns_400(api_client, demo_model_dir):
    entries = {"MLmodel": (demo_model_dir / "MLmodel").read_bytes(), "/tmp/evil.txt": b"x"}
    response = _upload(api_client, "absolute", _zip_with(entries))
    assert response.status_code == 400


def test_upload_symlink_entry_returns_400(api_client, demo_model_dir):
    archive = _zip_with({"MLmodel": (demo_model_dir / "MLmodel").read_bytes()}, links={"model.skops": "/etc/passwd"})
    response = _upload(api_client, "link", archive)
    assert "symbolic link" in response.json()["error"]["message"]


def test_upload_over_limit_returns_413(api_client, demo_model_zip, settings):
    settings.PORTAL_MAX_UPLOAD_BYTES = 1024
    response = _upload(api_client, "big", demo_model_zip.read_bytes())
    assert response.status_code == 413


def test_upload_without_pyfunc_flavor_returns_400(api_client):
    mlmodel = b"flavors:\n  custom_flavor:\n    data: model.bin\n"
    response = _upload(api_client, "custom", _zip_with({"MLmodel": mlmodel}))
    assert "no python_function flavor" in response.json()["error"]["message"]


def test_upload_without_file_or_uri_names_artifact(api_client):
    response = api_client.post(VERSIONS_URL.format(name="x"), {}, format="multipart")
    assert response.json()["error"]["field"] == "artifact"


def test_upload_requires_authentication(client, demo_model_zip):
    response = client.post(VERSIONS_URL.format(name="x"), {"artifact": io.BytesIO(b"x")})
    assert response.status_code in (401, 403)


def test_upload_blank_model_name_returns_400(api_client, demo_model_zip):
    response = _upload(api_client, "%20%20", demo_model_zip.read_bytes())
    assert response.json()["error"]["field"] == "model"


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory) -> str:
    """A real MLflow sqlite store with the demo model registered and aliased champion."""
    from mlops_portal import demo

    folder = tmp_path_factory.mktemp("mlflow")
    tracking_uri = f"sqlite:///{folder / 'mlflow.db'}"
    demo.log_and_register(tracking_uri, (folder / "artifacts").as_uri())
    return tracking_uri


def _import(client, name, uri, tracking_uri):
    return client.post(VERSIONS_URL.format(name=name), {"mlflow_uri": uri, "tracking_uri": tracking_uri}, format="json")


def test_import_by_alias_returns_201(api_client, mlflow_store):
    response = _import(api_client, "bc", "models:/breast-cancer-classifier@champion", mlflow_store)
    assert response.status_code == 201, response.content


def test_import_by_alias_copies_run_metrics(api_client, mlflow_store):
    response = _import(api_client, "bc", "models:/breast-cancer-classifier@champion", mlflow_store)
    assert "accuracy" in response.json()["metrics"]


def test_import_by_version_number_records_run_id(api_client, mlflow_store):
    response = _import(api_client, "bc", "models:/breast-cancer-classifier/1", mlflow_store)
    assert response.json()["mlflow_run_id"] != ""


def test_import_unknown_alias_returns_400_naming_uri(api_client, mlflow_store):
    response = _import(api_client, "bc", "models:/breast-cancer-classifier@nope", mlflow_store)
    assert response.json()["error"]["field"] == "mlflow_uri"


def test_import_unknown_model_stores_nothing(api_client, mlflow_store):
    _import(api_client, "bc", "models:/no-such-model/1", mlflow_store)
    assert _nothing_stored()


def test_import_malformed_uri_returns_400(api_client, mlflow_store):
    response = _import(api_client, "bc", "s3://bucket/model", mlflow_store)
    assert response.status_code == 400


def test_import_without_tracking_uri_names_field(api_client):
    response = api_client.post(VERSIONS_URL.format(name="bc"), {"mlflow_uri": "models:/x/1"}, format="json")
    assert response.json()["error"]["field"] == "tracking_uri"


def test_upload_records_audit_entry(api_client, user, demo_model_zip):
    from audit.models import AuditEntry

    _upload(api_client, "breast-cancer", demo_model_zip.read_bytes())
    assert AuditEntry.objects.filter(action="version.register", actor=user, model="breast-cancer").count() == 1
