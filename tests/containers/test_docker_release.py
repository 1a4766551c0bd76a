"""Blue/green releases on the Docker runtime through the whole portal.

A real Celery worker builds the model images in its build task and runs the
model servers as containers on the engine from conftest.py. The real gateway
switches traffic from the v1 container to the v2 container while clients keep
sending predictions. Skipped, with the reason, when no engine responds.
"""

from __future__ import annotations

import time

import pytest

from deployments.models import Environment, ImageBuild, ModelServer
from deployments.runtimes.docker_image import LABEL_INSTANCE
from tests.conftest import zip_folder
from tests.integration.conftest import stack  # noqa: F401  (the fixture, for this folder)
from tests.integration.helpers import ENDPOINT, RequestStream, predict, register, release, wait_for_version

from .conftest import engine_url

pytestmark = [pytest.mark.integration, pytest.mark.stack_env(PORTAL_SCALE_DOWN_DELAY="20")]

MODEL = "breast-cancer-classifier"
ENVIRONMENT = "docker-dev"
# A cold build takes about a minute here (see docs/benchmarks.md); the later
# build reuses the cached venv layer.
RELEASE_TIMEOUT = 420


@pytest.fixture
def stack_worker_env(engine, wheelhouse, instance) -> dict[str, str]:
    return {
        "DOCKER_HOST": engine_url(),
        "PORTAL_DOCKER_WHEELHOUSE": str(wheelhouse),
        "PORTAL_INSTANCE": instance,
    }


@pytest.fixture
def second_model_zip(tmp_path_factory):
    from mlops_portal import demo

    folder = demo.save_model(tmp_path_factory.mktemp("docker-v2") / "model", regularization=0.05)
    return zip_folder(folder, tmp_path_factory.mktemp("docker-v2-zip") / "model.zip")


@pytest.fixture
def docker_environment(stack):
    return Environment.objects.create(name=ENVIRONMENT, runtime=Environment.Runtime.DOCKER)


@pytest.fixture
def remove_containers(engine, instance):
    """Remove the containers this test's servers left, keeping the images for the other tests."""
    yield
    for container in engine.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"}):
        container.remove(force=True)


def instance_containers(engine, instance) -> list:
    return engine.containers.list(filters={"label": f"{LABEL_INSTANCE}={instance}"})


def test_blue_green_on_docker_switches_without_failed_requests(
    stack, engine, instance, docker_environment, demo_model_zip, second_model_zip, remove_containers
):
    """Release v1, then v2 under a steady stream of predictions, then roll back: the main job on containers.

    One scenario with several checks, because each release builds an image.
    """
    version_1 = register(stack, MODEL, demo_model_zip)
    assert version_1["status"] == "ready", version_1["status_reason"]
    started = time.monotonic()
    first = release(stack, MODEL, 1, environment=ENVIRONMENT, timeout=RELEASE_TIMEOUT)
    print(f"Release of v1 on the docker runtime took {time.monotonic() - started:.1f} s")
    assert first["state"] == "promoted", first["failure_reason"]

    payload = version_1["input_example"]
    wait_for_version(stack, payload, 1)
    version_2 = register(stack, MODEL, second_model_zip)
    assert version_2["status"] == "ready", version_2["status_reason"]

    with RequestStream(f"{stack.gateway_url}/endpoints/{ENDPOINT}/invocations", payload) as stream:
        stream.wait_for_requests(50)
        started = time.monotonic()
        second = release(stack, MODEL, 2, environment=ENVIRONMENT, timeout=RELEASE_TIMEOUT)
        print(f"Release of v2 on the docker runtime took {time.monotonic() - started:.1f} s")
        wait_for_version(stack, payload, 2)
        containers_after_switch = instance_containers(engine, instance)
        stream.wait_for_more(50)
    print(f"Requests during the switch to v2: {dict(stream.statuses)}, by version: {dict(stream.versions)}")

    assert second["state"] == "promoted", second["failure_reason"]
    assert stream.failures == 0, stream.errors[:5]
    assert set(stream.versions) == {"1", "2"}
    # Blue and green side by side until the scale-down delay has passed.
    assert len(containers_after_switch) == 2
    assert set(ModelServer.objects.values_list("runtime", flat=True)) == {"docker"}

    builds = list(ImageBuild.objects.select_related("version"))
    for build in builds:
        print(f"Build {build.pk} of v{build.version.version}: {build.state}, reused={build.reused}, {build.duration_seconds:.1f} s")
    assert [(build.version.version, build.state) for build in sorted(builds, key=lambda b: b.pk)] == [
        (1, "succeeded"), (2, "succeeded"),
    ], [build.failure_reason[:300] for build in builds]
    assert all(build.log for build in builds)

    response = stack.api.post(f"/api/v1/releases/{second['id']}/rollback/", json={"reason": "test rollback"})
    assert response.json()["state"] == "rolled_back", response.text
    wait_for_version(stack, payload, 1, timeout=10)
    assert predict(stack, payload).headers["x-model-version"] == "1"
