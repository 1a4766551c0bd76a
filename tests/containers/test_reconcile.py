"""Reconciling model server rows with the containers on a real engine.

The containers here run `sleep` in the base image with the labels the Docker
runtime sets: reconciling reads labels and rows, not what the container serves.
"""

from __future__ import annotations

import docker.errors
import pytest

from deployments.models import Endpoint, Environment, ModelServer
from deployments.runtimes.docker import LABEL_SERVER_ID, DEFAULT_BASE_IMAGE
from deployments.runtimes.docker_image import LABEL_INSTANCE
from deployments.services import sweeps
from registry.models import Artifact, ModelVersion, RegisteredModel

from .conftest import engine_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def docker_settings(settings, engine, wheelhouse, instance):
    settings.DOCKER_HOST = engine_url()
    settings.PORTAL_DOCKER_WHEELHOUSE = str(wheelhouse)
    settings.PORTAL_INSTANCE = instance
    return settings


@pytest.fixture
def make_server(db):
    environment = Environment.objects.create(name="docker-reconcile", runtime=Environment.Runtime.DOCKER)
    endpoint = Endpoint.objects.create(name="reconcile", environment=environment)
    model = RegisteredModel.objects.create(name="reconcile", last_version=1)
    artifact = Artifact.objects.create(sha256="b" * 64, size=10, file="artifacts/bb/x.zip")
    version = ModelVersion.objects.create(model=model, version=1, artifact=artifact, status="ready", source="upload")

    def make(state: str) -> ModelServer:
        return ModelServer.objects.create(endpoint=endpoint, version=version, runtime="docker", state=state)

    return make


@pytest.fixture
def labelled_container(engine, instance):
    """Start a container labelled as the server with the given id; remove what is left at the end."""
    started = []

    def start(server_id: int):
        container = engine.containers.run(
            DEFAULT_BASE_IMAGE,
            ["sleep", "300"],
            detach=True,
            labels={LABEL_INSTANCE: instance, LABEL_SERVER_ID: str(server_id)},
            stop_signal="SIGKILL",
        )
        started.append(container)
        return container

    yield start
    for container in started:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:  # already removed by the sweep under test
            pass


def _exists(engine, container) -> bool:
    return any(listed.id == container.id for listed in engine.containers.list(all=True))


def test_reconcile_removes_container_without_row(docker_settings, engine, labelled_container):
    container = labelled_container(987654)
    sweeps.reconcile_servers()
    assert not _exists(engine, container)


def test_reconcile_removes_container_of_stopped_server(docker_settings, engine, make_server, labelled_container):
    container = labelled_container(make_server("stopped").pk)
    sweeps.reconcile_servers()
    assert not _exists(engine, container)


def test_reconcile_keeps_container_of_ready_server(docker_settings, engine, make_server, labelled_container):
    container = labelled_container(make_server("ready").pk)
    sweeps.reconcile_servers()
    assert _exists(engine, container)


def test_reconcile_marks_ready_server_without_container_failed(docker_settings, make_server):
    server = make_server("ready")
    sweeps.reconcile_servers()
    server.refresh_from_db()
    assert server.state == ModelServer.State.FAILED


def test_reconcile_reports_removed_server_ids(docker_settings, make_server, labelled_container):
    server = make_server("stopped")
    labelled_container(server.pk)
    assert sweeps.reconcile_servers()["removed"] == [server.pk]
