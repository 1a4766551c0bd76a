"""Query counts on the dashboard and list pages stay flat as rows grow from 10 to 100."""

import itertools

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from deployments.models import Approval, Endpoint, Release
from tests.web.conftest import client_for, make_versions, serve

pytestmark = pytest.mark.django_db

PAGES = ["/", "/endpoints/", "/releases/", "/audit/", "/models/"]
STATES = itertools.cycle(["promoted", "failed", "progressing", "awaiting_approval", "rolled_back"])


@pytest.fixture
def grow(world):
    """Return a function that adds endpoints, each with a server, a release, an approval and audit entries."""
    v1, v2 = make_versions("fraud-model")
    counter = itertools.count()

    def add(count: int) -> None:
        for _ in range(count):
            number = next(counter)
            environment = world["endpoints"]["production" if number % 2 else "development"].environment
            endpoint = Endpoint.objects.create(name=f"endpoint-{number}", environment=environment)
            serve(endpoint, v1)
            release = Release.objects.create(
                endpoint=endpoint, version=v2, stable_version=v1, state=next(STATES), requested_by=world["dave"]
            )
            Approval.objects.create(release=release, approver=world["oscar"], decision="approved")
            for action in ("release.created", "release.state"):
                AuditEntry.objects.create(
                    actor=world["dave"], action=action, object_type="deployments.release", object_id=str(release.pk),
                    endpoint=endpoint.name, model="fraud-model", message=f"{action} {number}",
                )

    return add


def queries_for(client, url: str) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(context)


@pytest.mark.parametrize("url", PAGES)
@pytest.mark.parametrize("person", ["olga", "dana"])
def test_list_page_queries_flat(world, grow, url, person, django_assert_max_num_queries):
    client = client_for(world[person])
    grow(10)
    baseline = queries_for(client, url)

    grow(90)
    with django_assert_max_num_queries(baseline):
        client.get(url)


def test_release_page_queries_flat(world, grow, django_assert_max_num_queries):
    """Events and approvals of one release do not add a query each."""
    client = client_for(world["olga"])
    release = world["releases"]["production"]
    url = f"/releases/{release.pk}/status/"
    for number in range(10):
        release.events.create(kind="note", message=f"note {number}", actor=world["dana"])
    baseline = queries_for(client, url)

    for number in range(90):
        release.events.create(kind="note", message=f"note {number}", actor=world["dave"])
    with django_assert_max_num_queries(baseline):
        client.get(url)


def test_dashboard_queries_bounded(world, grow, django_assert_max_num_queries):
    client = client_for(world["olga"])
    grow(100)
    with django_assert_max_num_queries(12):
        client.get("/")
