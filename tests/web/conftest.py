"""Personas and objects for the page, access and approval tests.

Personas: Dana and Dave (data scientists), Olga and Oscar (ops leads), Vic
(viewer), Ada (admin), Nora (signed in, no role) and Fran (a data scientist
in the "fraud team" group). The "fraud" environment is restricted to the
fraud team, so only Fran, the ops leads and Ada see it.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from deployments.models import Endpoint, Environment, ImageBuild, ModelServer, Release, RouteBackend
from registry.models import Artifact, ModelVersion, RegisteredModel
from tests.conftest import add_role

COLUMNS_V1 = [{"name": "age", "type": "long"}, {"name": "plan", "type": "string"}]
COLUMNS_V2 = [{"name": "age", "type": "double"}, {"name": "region", "type": "string"}]


@pytest.fixture
def people(db, django_user_model):
    def person(name, *roles, **extra):
        # No password: these tests sign in with force_login, and hashing one
        # per user would cost most of each test's time.
        user = django_user_model.objects.create_user(username=name, password=None, **extra)
        for role in roles:
            add_role(user, role)
        return user

    fraud_team, _ = Group.objects.get_or_create(name="fraud team")
    fran = person("fran", "data scientist")
    fran.groups.add(fraud_team)
    return {
        "dana": person("dana", "data scientist"),
        "dave": person("dave", "data scientist"),
        "olga": person("olga", "ops lead"),
        "oscar": person("oscar", "ops lead"),
        "vic": person("vic", "viewer"),
        "ada": person("ada", is_superuser=True, is_staff=True),
        "nora": person("nora"),
        "fran": fran,
    }


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def environments(db):
    development, _ = Environment.objects.update_or_create(name="development", defaults={"requires_approval": False})
    production, _ = Environment.objects.update_or_create(
        name="production", defaults={"requires_approval": True, "approvals_required": 1}
    )
    fraud, _ = Environment.objects.update_or_create(name="fraud", defaults={"requires_approval": False})
    fraud.restricted_to.set([Group.objects.get_or_create(name="fraud team")[0]])
    return {"development": development, "production": production, "fraud": fraud}


def make_versions(name: str, count: int = 2) -> list[ModelVersion]:
    """Ready versions of a model with a stored artifact row; nothing is started from them."""
    model = RegisteredModel.objects.create(name=name, last_version=count)
    artifact, _ = Artifact.objects.get_or_create(sha256="a" * 64, defaults={"size": 10, "file": "artifacts/aa/x.zip"})
    signatures = [COLUMNS_V1, COLUMNS_V2]
    return [
        ModelVersion.objects.create(
            model=model,
            version=number,
            artifact=artifact,
            status="ready",
            source="upload",
            signature={"inputs": signatures[(number - 1) % 2], "outputs": None, "params": None},
        )
        for number in range(1, count + 1)
    ]


def serve(endpoint: Endpoint, version: ModelVersion, weight=100, role="stable") -> ModelServer:
    """Put a ready server row for `version` on the endpoint's route table."""
    server = ModelServer.objects.create(endpoint=endpoint, version=version, runtime="local", state="ready", url="http://127.0.0.1:1")
    RouteBackend.objects.create(endpoint=endpoint, server=server, weight=weight, role=role)
    return server


@pytest.fixture
def world(people, environments):
    """One endpoint per environment, each serving churn v1, and a release of v2 on each.

    The production release waits for approval; the development one is
    promoted (v1 still runs, so it can be rolled back); the fraud one is in
    progress.
    """
    v1, v2 = make_versions("churn")
    endpoints, releases = {}, {}
    states = {"development": "promoted", "production": "awaiting_approval", "fraud": "progressing"}
    for name, environment in environments.items():
        endpoint = Endpoint.objects.create(name=f"churn-{name}", environment=environment)
        stable = serve(endpoint, v1)
        endpoints[name] = endpoint
        releases[name] = Release.objects.create(
            endpoint=endpoint,
            version=v2,
            stable_version=v1,
            stable_server=stable,
            state=states[name],
            requested_by=people["dana"] if name != "fraud" else people["fran"],
        )
    return {"endpoints": endpoints, "releases": releases, "versions": (v1, v2), **people}


def add_build(release: Release, **fields) -> ImageBuild:
    """Give the release a pending docker candidate server, if it has none, and store a build row for it."""
    if release.candidate_server is None:
        release.candidate_server = ModelServer.objects.create(
            endpoint=release.endpoint, version=release.version, runtime="docker", state="pending"
        )
        release.save(update_fields=["candidate_server"])
    defaults = {"state": "running", "step": "3/9", "step_description": "RUN python -m venv /opt/venv"}
    return ImageBuild.objects.create(
        server=release.candidate_server, version=release.version, runtime="docker", **{**defaults, **fields}
    )
