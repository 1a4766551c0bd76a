"""Upload limits: 413 before the body is read, and uploads that spill to disk instead of memory."""

from __future__ import annotations

import io
import socket
from urllib.parse import urlparse

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


class UnreadableBody(io.RawIOBase):
    """A request body that fails the test when anything reads it."""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        raise AssertionError("the request body was read")


def _post_declaring(client: Client, length: int):
    return client.generic(
        "POST",
        "/api/v1/models/big/versions/",
        CONTENT_TYPE="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(length),
        **{"wsgi.input": UnreadableBody()},
    )


def test_body_over_limit_returns_413_unread(settings, user):
    settings.PORTAL_MAX_UPLOAD_BYTES = 1024
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert _post_declaring(client, 1025).status_code == 413


def test_body_over_limit_names_setting(settings, user):
    settings.PORTAL_MAX_UPLOAD_BYTES = 1024
    client = Client()
    client.force_login(user)
    assert "PORTAL_MAX_UPLOAD_BYTES" in _post_declaring(client, 5 * 1024**3).json()["error"]["message"]


def test_page_upload_over_limit_returns_413(settings, user):
    settings.PORTAL_MAX_UPLOAD_BYTES = 1024
    client = Client()
    client.force_login(user)
    response = client.generic("POST", "/models/upload/", CONTENT_LENGTH="4096", **{"wsgi.input": UnreadableBody()})
    assert response.status_code == 413


@pytest.mark.django_db(transaction=True)
def test_live_413_arrives_before_body_is_sent(live_server, settings):
    """Declare 3 GiB, send only the headers, and read the answer."""
    settings.PORTAL_MAX_UPLOAD_BYTES = 2 * 1024**3
    address = urlparse(live_server.url)
    request = (
        "POST /api/v1/models/big/versions/ HTTP/1.1\r\n"
        f"Host: {address.hostname}:{address.port}\r\n"
        "Content-Type: application/zip\r\n"
        f"Content-Length: {3 * 1024**3}\r\n\r\n"
    )
    with socket.create_connection((address.hostname, address.port), timeout=10) as connection:
        connection.sendall(request.encode())
        status_line = connection.recv(100).split(b"\r\n", 1)[0]
    assert status_line.split(b" ")[1] == b"413"


def test_upload_over_memory_limit_spills_to_disk(settings, monkeypatch, api_client, demo_model_zip):
    """Django writes uploads above FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file, which the registry reads by path."""
    from django.core.files.uploadhandler import TemporaryFileUploadHandler

    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    spilled = []
    original = TemporaryFileUploadHandler.file_complete

    def record(self, file_size):
        uploaded = original(self, file_size)
        spilled.append(uploaded.temporary_file_path())
        return uploaded

    monkeypatch.setattr(TemporaryFileUploadHandler, "file_complete", record)
    handle = io.BytesIO(demo_model_zip.read_bytes())
    handle.name = "m.zip"
    api_client.post("/api/v1/models/disk/versions/", {"artifact": handle}, format="multipart")
    assert len(spilled) == 1
