"""Keyset pagination over rows that share a timestamp, on real PostgreSQL."""

from __future__ import annotations

import pytest
from django.utils import timezone

from registry.models import Artifact, ModelVersion, RegisteredModel

pytestmark = pytest.mark.django_db

ROWS = 230


@pytest.fixture
def tied_models(postgresql_only):
    """ROWS models that all have the same created_at and updated_at."""
    RegisteredModel.objects.bulk_create(
        RegisteredModel(name=f"model-{index:04d}", name_key=f"model-{index:04d}") for index in range(ROWS)
    )
    moment = timezone.now()
    RegisteredModel.objects.update(created_at=moment, updated_at=moment)
    return moment


@pytest.fixture
def tied_versions(postgresql_only):
    model = RegisteredModel.objects.create(name="tied", last_version=ROWS)
    artifact = Artifact.objects.create(sha256="b" * 64, size=1, file="artifacts/bb/b.zip")
    ModelVersion.objects.bulk_create(
        ModelVersion(model=model, version=number, artifact=artifact, source="upload") for number in range(1, ROWS + 1)
    )
    ModelVersion.objects.update(created_at=timezone.now())
    return model


def _walk(client, url: str, params: dict) -> list[int]:
    """Follow 'next' links from the first page; return the ids in the order received."""
    ids = []
    response = client.get(url, params)
    while True:
        body = response.json()
        ids += [row["id"] for row in body["results"]]
        if body["next"] is None:
            return ids
        response = client.get(body["next"])


@pytest.mark.parametrize("ordering", ["-created_at", "created_at", "-updated_at", "name", "-name"])
def test_model_pages_hold_every_row_once(api_client, tied_models, ordering):
    ids = _walk(api_client, "/api/v1/models/", {"ordering": ordering, "page_size": 7})
    assert len(ids) == len(set(ids)) == ROWS


def test_model_pages_follow_id_within_a_tie(api_client, tied_models):
    ids = _walk(api_client, "/api/v1/models/", {"ordering": "-created_at", "page_size": 7})
    assert ids == sorted(ids, reverse=True)


@pytest.mark.parametrize("ordering", ["-created_at", "created_at", "-version"])
def test_version_pages_hold_every_row_once(api_client, tied_versions, ordering):
    ids = _walk(api_client, f"/api/v1/models/{tied_versions.pk}/versions/", {"ordering": ordering, "page_size": 9})
    assert len(ids) == len(set(ids)) == ROWS


def test_rows_added_during_walk_do_not_repeat_rows(api_client, tied_models):
    first = api_client.get("/api/v1/models/", {"ordering": "-created_at", "page_size": 50}).json()
    RegisteredModel.objects.create(name="added-later")
    rest = _walk(api_client, first["next"], {})
    assert set(rest).isdisjoint(row["id"] for row in first["results"])


def test_invalid_cursor_names_field(api_client, tied_models):
    response = api_client.get("/api/v1/models/", {"cursor": "bm90LWEtY3Vyc29y"})
    assert response.json()["error"]["field"] == "cursor"


def test_unknown_ordering_names_field(api_client):
    response = api_client.get("/api/v1/models/", {"ordering": "owner"})
    assert response.json()["error"]["field"] == "ordering"


def test_page_size_over_maximum_returns_400(api_client):
    response = api_client.get("/api/v1/models/", {"page_size": "100000"})
    assert response.status_code == 400


def test_page_walk_on_model_list_page(client, user, tied_models):
    client.force_login(user)
    seen, query = [], "page_size=40"
    while query:
        response = client.get(f"/models/?{query}")
        seen += [model.pk for model in response.context["models"]]
        query = response.context["next_query"]
    assert len(seen) == len(set(seen)) == ROWS
