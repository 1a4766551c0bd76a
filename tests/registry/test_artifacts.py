"""Artifact downloads: the whole zip, single files, and paths that try to leave the model folder."""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile

import pytest

from registry.models import Artifact, ModelVersion

pytestmark = pytest.mark.django_db

TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "/etc/passwd",
    "%2Fetc%2Fpasswd",
    "..\\..\\etc\\passwd",
    "C:/Windows/win.ini",
    "MLmodel/../../secret",
    "MLmodel%00.txt",
]


def _download_url(version: ModelVersion) -> str:
    return f"/api/v1/models/{version.model_id}/versions/{version.version}/artifact/"


def test_zip_download_matches_stored_digest(api_client, registered):
    version = registered("churn")
    body = b"".join(api_client.get(_download_url(version)).streaming_content)
    assert hashlib.sha256(body).hexdigest() == version.artifact.sha256


def test_single_file_download_returns_mlmodel(api_client, registered):
    version = registered("churn")
    response = api_client.get(_download_url(version), {"path": "MLmodel"})
    assert b"flavors:" in b"".join(response.streaming_content)


def test_file_list_names_mlmodel(api_client, registered):
    version = registered("churn")
    files = api_client.get(f"/api/v1/models/{version.model_id}/versions/1/files/").json()
    assert "MLmodel" in [entry["path"] for entry in files]


def test_missing_file_returns_404(api_client, registered):
    version = registered("churn")
    assert api_client.get(_download_url(version), {"path": "nope.txt"}).status_code == 404


@pytest.mark.parametrize("path", ["../../../../etc/passwd", "/etc/passwd", "..\\secret", "a/../../b", "C:/x", "x\x00y", ""])
def test_traversal_path_names_field(api_client, registered, path):
    version = registered("churn")
    response = api_client.get(_download_url(version), {"path": path})
    assert response.json()["error"]["field"] == "path"


def test_symlink_entry_is_not_served(api_client, registered, tmp_path):
    """A stored zip with a link entry (rejected at upload, planted here) is not followed."""
    version = registered("churn")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("MLmodel", "flavors: {}\n")
        link = zipfile.ZipInfo("passwd")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    artifact = Artifact(sha256="d" * 64, size=len(buffer.getvalue()))
    artifact.file.save("planted.zip", io.BytesIO(buffer.getvalue()), save=True)
    ModelVersion.objects.filter(pk=version.pk).update(artifact=artifact)
    assert api_client.get(_download_url(version), {"path": "passwd"}).status_code == 404


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("raw_path", TRAVERSALS)
def test_live_traversal_is_not_served(live_api, demo_model_zip, raw_path):
    """Send each path percent-encoded as written, so the server decodes it exactly once."""
    with open(demo_model_zip, "rb") as handle:
        model_id = live_api.post("/api/v1/models/churn/versions/", files={"artifact": ("m.zip", handle)}).json()["model_id"]
    response = live_api.get(f"/api/v1/models/{model_id}/versions/1/artifact/?path={raw_path}")
    assert response.status_code in (400, 404)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("raw_path", ["../%2e%2e/etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e/%2e%2e/etc/passwd"])
def test_live_traversal_in_path_segment_is_not_served(live_api, demo_model_zip, raw_path):
    with open(demo_model_zip, "rb") as handle:
        model_id = live_api.post("/api/v1/models/churn/versions/", files={"artifact": ("m.zip", handle)}).json()["model_id"]
    response = live_api.get(f"/api/v1/models/{model_id}/versions/1/artifact/{raw_path}")
    assert b"root:" not in response.content


def test_artifact_missing_from_storage_returns_404(api_client, registered):
    version = registered("churn")
    version.artifact.file.storage.delete(version.artifact.file.name)
    response = api_client.get(_download_url(version))
    assert response.status_code == 404


def test_artifact_missing_from_storage_names_digest(api_client, registered):
    version = registered("churn")
    version.artifact.file.storage.delete(version.artifact.file.name)
    response = api_client.get(f"/api/v1/models/{version.model_id}/versions/1/files/")
    assert version.artifact.sha256 in response.json()["error"]["message"]
