"""The number of queries on list pages and list endpoints does not grow with the number of rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import Artifact, ModelAlias, ModelTag, ModelVersion, RegisteredModel, VersionTag

pytestmark = pytest.mark.django_db


def _populate(count: int) -> RegisteredModel:
    """Create `count` models with a tag, and `count` versions of one model with aliases and tags."""
    RegisteredModel.objects.bulk_create(RegisteredModel(name=f"m{index}", name_key=f"m{index}") for index in range(count))
    ModelTag.objects.bulk_create(ModelTag(model=model, key="team", value="a") for model in RegisteredModel.objects.all())

    model = RegisteredModel.objects.create(name="many", last_version=count)
    artifact, _ = Artifact.objects.get_or_create(sha256="c" * 64, defaults={"size": 1, "file": "artifacts/cc/c.zip"})
    created = ModelVersion.objects.bulk_create(
        ModelVersion(model=model, version=number, artifact=artifact, source="upload") for number in range(1, count + 1)
    )
    VersionTag.objects.bulk_create(VersionTag(version=version, key="run", value="x") for version in created)
    ModelAlias.objects.create(model=model, alias="champion", version=created[0])
    for other in RegisteredModel.objects.exclude(pk=model.pk)[:count]:
        ModelAlias.objects.create(model=other, alias="champion", version=created[0])
    return model


def _queries(fetch) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = fetch()
    assert response.status_code == 200, response.content[:500]
    return len(captured)


def _count_for(rows: int, fetch_for_model) -> int:
    model = _populate(rows)
    return _queries(lambda: fetch_for_model(model))


@pytest.fixture
def counts():
    """Run a fetch against 10 rows and against 1,000 rows; return both query counts."""

    def measure(fetch_for_model):
        small = _count_for(10, fetch_for_model)
        ModelAlias.objects.all().delete()
        VersionTag.objects.all().delete()
        ModelVersion.objects.all().delete()
        ModelTag.objects.all().delete()
        RegisteredModel.objects.all().delete()
        return small, _count_for(1000, fetch_for_model)

    return measure


def test_model_list_api_queries_constant(api_client, counts):
    small, large = counts(lambda model: api_client.get("/api/v1/models/", {"page_size": 500}))
    assert small == large


def test_version_list_api_queries_constant(api_client, counts):
    small, large = counts(lambda model: api_client.get(f"/api/v1/models/{model.pk}/versions/", {"page_size": 500}))
    assert small == large


def test_model_list_page_queries_constant(client, user, counts):
    client.force_login(user)
    small, large = counts(lambda model: client.get("/models/", {"page_size": 500}))
    assert small == large


def test_model_detail_page_queries_constant(client, user, counts):
    client.force_login(user)
    small, large = counts(lambda model: client.get(f"/models/{model.pk}/", {"page_size": 500}))
    assert small == large


def test_model_list_api_filtered_queries_constant(api_client, counts):
    small, large = counts(lambda model: api_client.get("/api/v1/models/", {"page_size": 500, "alias": "champion", "tag": "team=a"}))
    assert small == large
