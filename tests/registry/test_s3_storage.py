"""Artifacts in an S3-compatible bucket: moto's S3 server on 127.0.0.1 through django-storages."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time

import httpx
import pytest

from registry.models import Artifact, ModelVersion
from registry.services.artifacts import unpack_artifact
from tests.registry.conftest import upload

pytestmark = pytest.mark.django_db

BUCKET = "portal-artifacts"
CREDENTIALS = {"access_key": "test-key", "secret_key": "test-secret", "region_name": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on a free port of 127.0.0.1, stopped by PID afterwards."""
    from tests.integration.conftest import free_port

    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(timeout=10)
    log.close()


@pytest.fixture
def s3_bucket(s3_endpoint, settings):
    import boto3

    client = boto3.client(
        "s3", endpoint_url=s3_endpoint, aws_access_key_id=CREDENTIALS["access_key"],
        aws_secret_access_key=CREDENTIALS["secret_key"], region_name=CREDENTIALS["region_name"],
    )
    client.create_bucket(Bucket=BUCKET)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": BUCKET, "endpoint_url": s3_endpoint, "file_overwrite": False, **CREDENTIALS},
        },
    }
    yield client
    for entry in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=entry["Key"])
    client.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def s3_version(api_client, demo_model_zip, s3_bucket) -> ModelVersion:
    response = upload(api_client, "churn", demo_model_zip.read_bytes())
    return ModelVersion.objects.select_related("artifact").get(pk=response.json()["id"])


def _keys(client) -> list[str]:
    return [entry["Key"] for entry in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_upload_stores_object_by_digest(s3_bucket, s3_version):
    assert _keys(s3_bucket) == [f"artifacts/{s3_version.artifact.sha256[:2]}/{s3_version.artifact.sha256}.zip"]


def test_download_from_bucket_matches_digest(api_client, s3_version):
    response = api_client.get(f"/api/v1/models/{s3_version.model_id}/versions/1/artifact/")
    assert hashlib.sha256(b"".join(response.streaming_content)).hexdigest() == s3_version.artifact.sha256


def test_single_file_from_bucket(api_client, s3_version):
    response = api_client.get(f"/api/v1/models/{s3_version.model_id}/versions/1/artifact/", {"path": "MLmodel"})
    assert b"flavors:" in b"".join(response.streaming_content)


def test_unpack_from_bucket_has_mlmodel(s3_version):
    assert (unpack_artifact(s3_version.artifact) / "MLmodel").is_file()


def test_delete_removes_object(api_client, s3_bucket, s3_version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete(f"/api/v1/models/{s3_version.model_id}/versions/1/")
    assert _keys(s3_bucket) == []


def test_delete_removes_artifact_row(api_client, s3_version, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        api_client.delete(f"/api/v1/models/{s3_version.model_id}/versions/1/")
    assert not Artifact.objects.exists()
