"""Every URL pattern, enumerated from the URL resolver: anonymous users are rejected, and each role
gets the expected status on each page, action and API route.

Rows are keyed by route pattern rather than URL name, because the API router
and the pages share names such as "release-detail". A route without a row
fails `test_matrix_covers_every_route`, so a new route cannot skip the matrix.

Statuses: 200/201 served, 302 accepted by the access check (a page action
redirects after it ran, or after a state conflict it reports as a message),
400 accepted by the access check but invalid input, 401 not authenticated,
403 visible but not allowed, 404 not visible.
"""

from __future__ import annotations

import dataclasses
import json
import re
import zipfile
from pathlib import Path
from typing import Callable

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from registry.models import ModelAlias
from tests.web.conftest import add_build, client_for

pytestmark = pytest.mark.django_db

PERSONAS = ["dana", "dave", "fran", "olga", "vic", "ada", "nora"]
# Pages that must answer anonymous users.
PUBLIC_ROUTES = {"accounts/login/", "accounts/logout/", "admin/login/", "admin/logout/"}


@pytest.fixture
def world(world):
    """The shared world, plus an image build of the fraud release's candidate server for the build routes."""
    return {**world, "build": add_build(world["releases"]["fraud"])}


def walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


def all_routes() -> list[str]:
    return sorted(set(walk(get_resolver().url_patterns)))


def concrete_path(route: str, world) -> str:
    """Fill a route's parameters with objects of the world fixture: the fraud objects unless told otherwise."""
    releases = world["releases"]
    samples = {
        "release_id": releases["fraud"].pk,
        "pk": releases["fraud"].pk,
        "build_id": world["build"].pk,

        "version": 1,
        "alias": "champion",
        "object_id": "1",
        "id": "1",
        "content_type_id": "1",
        "app_label": "auth",
        "url": "nothing-here/",
    }
    if route.startswith("api/v1/^environments"):
        samples["name"] = "fraud"
    else:
        samples["name"] = world["endpoints"]["fraud"].name
    if route.startswith("api/v1/^builds"):
        samples["pk"] = world["build"].pk
    if route.startswith(("models/", "api/v1/models/")):
        samples["pk"] = samples["model"] = world["versions"][0].model_id

    def value(match) -> str:
        return str(samples[match.group("name")])

    # Regex groups first, because their "(?P<name>...)" also looks like a converter.
    path = re.sub(r"\(\?P<(?P<name>\w+)>[^)]*\)", value, route)
    path = re.sub(r"<(?:\w+:)?(?P<name>\w+)>", value, path)
    return "/" + path.replace("^", "").replace("$", "")


# --- anonymous users ---


@pytest.mark.parametrize("route", [route for route in all_routes() if route not in PUBLIC_ROUTES])
@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_rejected(world, route, method):
    response = getattr(Client(), method)(concrete_path(route, world))
    if response.status_code == 302:
        assert "/login/" in response["Location"]
    else:
        # 405: the gateway routes check the method before the token, which reveals nothing.
        assert response.status_code in (401, 403, 405)


# --- roles ---


@dataclasses.dataclass
class Case:
    """One request on a route and the status each persona gets."""

    expected: dict[str, int]
    method: str = "get"
    data: Callable | dict | None = None  # form data, or a function of the world fixture
    json: bool = False
    target: str = "fraud"  # which environment's release or endpoint the route names

    def path(self, route: str, world) -> str:
        path = concrete_path(route, world)
        if self.target != "fraud":
            release, endpoint = world["releases"][self.target], world["endpoints"][self.target]
            path = path.replace(f"/{world['releases']['fraud'].pk}/", f"/{release.pk}/")
            path = path.replace(f"/{world['endpoints']['fraud'].name}/", f"/{endpoint.name}/")
        return path


def everyone(status: int) -> dict[str, int]:
    return {person: (403 if person == "nora" else status) for person in PERSONAS}


def by_visibility(status: int) -> dict[str, int]:
    """The fraud environment is visible to Fran (fraud team), ops leads and admins only."""
    return {"dana": 404, "dave": 404, "fran": status, "olga": status, "vic": 404, "ada": status, "nora": 403}


def roles(data_scientists: int, ops_lead: int, admin: int, viewer: int = 403) -> dict[str, int]:
    return {
        "dana": data_scientists, "dave": data_scientists, "fran": data_scientists,
        "olga": ops_lead, "vic": viewer, "ada": admin, "nora": 403,
    }


def operate_on_fraud(status: int) -> dict[str, int]:
    """Acting on the fraud release: outsiders get 404, and everyone who sees it may act (no approval there)."""
    return {**by_visibility(status), "vic": 404}


# The production release was requested by Dana, so she may not approve it.
APPROVERS = {"dana": 403, "dave": 403, "fran": 403, "olga": 302, "vic": 403, "ada": 302, "nora": 403}
API_APPROVERS = {**APPROVERS, "olga": 200, "ada": 200}
# Aborting the waiting production release: its requester Dana, ops leads and admins.
WITHDRAWERS = {**APPROVERS, "dana": 302}
API_WITHDRAWERS = {**API_APPROVERS, "dana": 200}


def restore_data(world):
    return {"version": world["versions"][1].pk, "reason": "matrix"}


def release_body(world):
    return {"endpoint": "churn-new", "environment": "development", "model": "churn", "version": 2}


MATRIX: dict[str, list[Case]] = {
    # Pages
    "": [Case(everyone(200))],
    "endpoints/": [Case(everyone(200))],
    "endpoints/<slug:name>/": [Case(by_visibility(200)), Case(everyone(200), target="development")],
    "endpoints/<slug:name>/restore/": [
        Case({**roles(302, 302, 302), "vic": 403}, method="post", data=restore_data, target="development"),
        # Past the access check, production has no recent version to go back to.
        Case({**roles(403, 404, 404)}, method="post", data=restore_data, target="production"),
    ],
    "releases/": [Case(everyone(200))],
    "releases/new/": [Case(roles(200, 403, 200))],
    "releases/new/versions/": [Case(everyone(200))],
    "releases/<int:release_id>/": [Case(by_visibility(200)), Case(everyone(200), target="production")],
    "releases/<int:release_id>/status/": [Case(by_visibility(200))],
    "releases/<int:release_id>/actions/": [Case(by_visibility(200))],
    "releases/<int:release_id>/metrics/": [Case(by_visibility(200))],
    # The fraud build is running, so its panel keeps polling (200, not 286).
    "releases/<int:release_id>/build/": [Case(by_visibility(200)), Case(everyone(286), target="development")],
    "builds/<int:build_id>/log": [Case(by_visibility(200))],
    "releases/<int:release_id>/approve/": [Case(APPROVERS, method="post", target="production")],
    "releases/<int:release_id>/reject/": [Case(APPROVERS, method="post", data={"reason": "no"}, target="production")],
    "releases/<int:release_id>/pause/": [Case(operate_on_fraud(302), method="post")],
    "releases/<int:release_id>/resume/": [Case(operate_on_fraud(302), method="post")],
    "releases/<int:release_id>/promote/": [Case(operate_on_fraud(302), method="post")],
    "releases/<int:release_id>/promote-fully/": [Case(operate_on_fraud(302), method="post")],
    "releases/<int:release_id>/abort/": [
        Case(operate_on_fraud(302), method="post", data={"reason": "matrix"}),
        # The production release awaits approval, so Dana, its requester, may withdraw it.
        Case(WITHDRAWERS, method="post", data={"reason": "matrix"}, target="production"),
    ],
    "releases/<int:release_id>/retry/": [Case(operate_on_fraud(302), method="post")],
    "releases/<int:release_id>/rollback/": [
        Case(roles(302, 302, 302), method="post", data={"reason": "matrix"}, target="development"),
        Case(roles(403, 302, 302), method="post", data={"reason": "matrix"}, target="production"),
    ],
    "audit/": [Case(everyone(200))],
    "audit/export.csv": [Case(everyone(200))],
    "models/": [Case(everyone(200))],
    "models/upload/": [Case(roles(200, 403, 200))],
    "models/<int:pk>/": [Case(everyone(200))],
    "models/<int:pk>/compare/": [Case(everyone(200))],
    "models/<int:pk>/versions/<int:version>/": [Case(everyone(200))],
    "models/<int:pk>/versions/<int:version>/archive/": [Case(roles(302, 403, 302), method="post", data={"archived": "1"})],
    # Past the access check, v1 still has servers, so deleting it is refused with a message.
    "models/<int:pk>/versions/<int:version>/delete/": [Case(roles(302, 403, 302), method="post")],
    # API
    "api/schema/": [Case(everyone(200))],
    "api/v1/": [Case(everyone(200))],
    # The catch-all after every API route, so an unknown path gets a JSON 404.
    "^api/": [Case(everyone(404)), Case(everyone(404), method="post", data={}, json=True)],
    "api/docs/": [Case(everyone(200))],
    "api/v1/gateway/routes": [Case({person: 401 for person in PERSONAS})],
    "api/v1/gateway/reports": [Case({person: 401 for person in PERSONAS}, method="post")],
    "api/v1/models/": [Case(everyone(200)), Case(roles(201, 403, 201), method="post", data={"name": "new-model"}, json=True)],
    "api/v1/models/<str:model>/": [
        Case(everyone(200)),
        Case(roles(200, 403, 200), method="patch", data={"description": "scores churn"}, json=True),
    ],
    "api/v1/models/<str:model>/tags/": [Case(roles(200, 403, 200), method="put", data={"key": "team", "value": "risk"}, json=True)],
    "api/v1/models/<str:model>/aliases/<str:alias>/": [Case(roles(200, 403, 200), method="put", data={"version": 1}, json=True)],
    "api/v1/models/<str:model>/versions/": [Case(everyone(200)), Case(roles(400, 403, 400), method="post", data={}, json=True)],
    "api/v1/models/<str:model>/versions/<int:version>/": [
        Case(everyone(200)),
        Case(roles(200, 403, 200), method="patch", data={"description": "first"}, json=True),
    ],
    "api/v1/models/<str:model>/versions/<int:version>/tags/": [
        Case(roles(200, 403, 200), method="put", data={"key": "stage", "value": "test"}, json=True),
    ],
    "api/v1/models/<str:model>/versions/<int:version>/artifact/": [Case(everyone(200))],
    "api/v1/models/<str:model>/versions/<int:version>/files/": [Case(everyone(200))],
    "api/v1/compare/": [Case(everyone(200), data={"base": "models:/churn/1", "candidate": "models:/churn/2"})],
    "api/v1/imports/": [Case(roles(400, 403, 400), method="post", data={}, json=True)],
    "api/v1/^environments/$": [Case(everyone(200)), Case(roles(403, 403, 201), method="post", data={"name": "qa"}, json=True)],
    "api/v1/^environments/(?P<name>[^/.]+)/$": [Case(by_visibility(200))],
    "api/v1/^endpoints/$": [
        Case(everyone(200)),
        Case(roles(201, 403, 201), method="post", data={"name": "new-endpoint", "environment": "development"}, json=True),
        # An environment the user cannot see is unknown to them, and a name in the body gets 400.
        Case(
            {**roles(400, 403, 201), "fran": 201},
            method="post",
            data={"name": "new-endpoint", "environment": "fraud"},
            json=True,
        ),
    ],
    "api/v1/^endpoints/(?P<name>[^/.]+)/$": [Case(by_visibility(200))],
    "api/v1/^endpoints/(?P<name>[^/.]+)/rollback/$": [
        Case(roles(200, 200, 200), method="post", data={"reason": "matrix"}, json=True, target="development"),
        # Past the access check, production has no promoted release to roll back.
        Case(roles(403, 409, 409), method="post", data={"reason": "matrix"}, json=True, target="production"),
    ],
    "api/v1/^releases/$": [Case(everyone(200)), Case(roles(201, 403, 201), method="post", data=release_body, json=True)],
    "api/v1/^releases/(?P<pk>[^/.]+)/$": [Case(by_visibility(200))],
    "api/v1/^releases/(?P<pk>[^/.]+)/events/$": [Case(by_visibility(200))],
    "api/v1/^releases/(?P<pk>[^/.]+)/approve/$": [Case(API_APPROVERS, method="post", data={}, json=True, target="production")],
    "api/v1/^releases/(?P<pk>[^/.]+)/reject/$": [
        Case(API_APPROVERS, method="post", data={"reason": "no"}, json=True, target="production"),
    ],
    "api/v1/^releases/(?P<pk>[^/.]+)/pause/$": [Case(operate_on_fraud(200), method="post", data={}, json=True)],
    # The fraud release is progressing, so resuming it conflicts once past the access check.
    "api/v1/^releases/(?P<pk>[^/.]+)/resume/$": [Case(operate_on_fraud(409), method="post", data={}, json=True)],
    # Promoting needs a ready candidate server, which the fixture's release lacks.
    "api/v1/^releases/(?P<pk>[^/.]+)/promote/$": [Case(operate_on_fraud(409), method="post", data={}, json=True)],
    "api/v1/^releases/(?P<pk>[^/.]+)/promote-fully/$": [Case(operate_on_fraud(409), method="post", data={}, json=True)],
    "api/v1/^releases/(?P<pk>[^/.]+)/abort/$": [
        Case(operate_on_fraud(200), method="post", data={"reason": "x"}, json=True),
        Case(API_WITHDRAWERS, method="post", data={"reason": "x"}, json=True, target="production"),
    ],
    "api/v1/^releases/(?P<pk>[^/.]+)/retry/$": [Case(operate_on_fraud(409), method="post", data={}, json=True)],
    "api/v1/^releases/(?P<pk>[^/.]+)/rollback/$": [
        Case(roles(200, 200, 200), method="post", data={"reason": "matrix"}, json=True, target="development"),
    ],
    "api/v1/^builds/$": [Case(everyone(200)), Case({**roles(405, 405, 405, viewer=405)}, method="post", data={}, json=True)],
    "api/v1/^builds/(?P<pk>[^/.]+)/$": [Case(by_visibility(200))],
}


def test_matrix_covers_every_route():
    routes = {route for route in all_routes() if not route.startswith("admin/") and route not in PUBLIC_ROUTES}
    assert sorted(routes - set(MATRIX)) == []


def test_matrix_names_only_existing_routes():
    assert sorted(set(MATRIX) - set(all_routes())) == []


@pytest.fixture
def stored_artifact(world, settings):
    """Put a small zipped MLflow model behind the world's artifact row, for the download routes."""
    path = Path(settings.MEDIA_ROOT) / world["versions"][0].artifact.file.name
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("MLmodel", "flavors:\n  python_function: {}\n")


@pytest.mark.parametrize("route", sorted(MATRIX))
def test_roles_get_expected_status(world, stored_artifact, route):
    ModelAlias.objects.create(model=world["versions"][0].model, alias="champion", version=world["versions"][0])
    for number, case in enumerate(MATRIX[route]):
        statuses = {}
        for person in case.expected:
            with transaction.atomic():
                statuses[person] = _request(case, route, world, client_for(world[person])).status_code
                transaction.set_rollback(True)
        assert statuses == case.expected, f"case {number} ({case.method.upper()} on {case.target})"


def _request(case: Case, route: str, world, client: Client):
    data = case.data(world) if callable(case.data) else case.data
    path = case.path(route, world)
    if case.json:
        return getattr(client, case.method)(path, data=json.dumps(data or {}), content_type="application/json")
    if case.method == "get":
        return client.get(path, data or {})
    return getattr(client, case.method)(path, data or {})
