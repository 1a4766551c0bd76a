"""Swagger UI and the schema are served by the portal itself, with no files from other hosts."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def docs_html(client, user) -> str:
    client.force_login(user)
    return client.get("/api/docs/").content.decode()


def _asset_urls(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_docs_page_loads_no_remote_asset(docs_html):
    remote = [url for url in _asset_urls(docs_html) if re.match(r"^(https?:)?//", url)]
    assert remote == []


def test_docs_page_uses_sidecar_bundle(docs_html):
    assert any("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in url for url in _asset_urls(docs_html))


def test_docs_assets_are_project_static_files(docs_html):
    """Each asset resolves through the staticfiles finders, which collectstatic and WhiteNoise serve from."""
    from django.conf import settings
    from django.contrib.staticfiles import finders

    prefix = "/" + settings.STATIC_URL.lstrip("/")
    local = [url.split("?")[0] for url in _asset_urls(docs_html) if url.startswith(prefix)]
    missing = [url for url in local if finders.find(url[len(prefix):]) is None]
    assert local
    assert missing == []


def test_schema_lists_compare_path(client, user):
    client.force_login(user)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/compare/" in schema["paths"]


def test_schema_lists_artifact_path(client, user):
    client.force_login(user)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/v1/models/{model}/versions/{version}/artifact/" in schema["paths"]


def test_schema_descriptions_carry_no_serializer_mixin_text(client, user):
    client.force_login(user)
    schema = client.get("/api/schema/", {"format": "json"}).content.decode()
    assert "rejects request fields the serializer does not write" not in schema
