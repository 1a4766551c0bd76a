"""Image build records: running a build through a runtime, the streamed log, and plan resource limits.

The local runtime replaces a runtime that builds images here, because its
prepare step is real and fast. Builds on a real container engine run in
tests/containers.
"""

from __future__ import annotations

import pytest

from deployments.models import Endpoint, ImageBuild
from deployments.services import builds, plans, servers
from mlops_portal.errors import InvalidInput
from registry.services import versions

pytestmark = pytest.mark.django_db


@pytest.fixture
def server(environment, demo_model_zip, user):
    version = versions.register_from_zip("churn", demo_model_zip, actor=user)
    endpoint = Endpoint.objects.create(name="churn", environment=environment)
    return servers.create_server(endpoint, version, {"memory_mb": 512})


def _build(server, runtime: str = "local") -> ImageBuild:
    return ImageBuild.objects.create(server=server, version=server.version, runtime=runtime)


def test_run_build_succeeds_with_local_runtime(server):
    build = builds.run_build(_build(server).pk)
    assert build.state == ImageBuild.State.SUCCEEDED


def test_run_build_stores_prepared_reference(server):
    build = builds.run_build(_build(server).pk)
    assert "model_dir" in build.prepared


def test_run_build_stores_log(server):
    build = builds.run_build(_build(server).pk)
    assert build.log.startswith("Model files ready in ")


def test_run_build_on_unavailable_runtime_fails_with_reason(server, settings):
    settings.DOCKER_HOST = None
    build = builds.run_build(_build(server, runtime="docker").pk)
    assert "set DOCKER_HOST" in build.failure_reason


def test_run_build_leaves_finished_build_alone(server):
    build = _build(server)
    ImageBuild.objects.filter(pk=build.pk).update(state=ImageBuild.State.FAILED, failure_reason="earlier")
    assert builds.run_build(build.pk).failure_reason == "earlier"


def test_log_writer_tracks_engine_step(server):
    build = _build(server)
    writer = builds.BuildLogWriter(build.pk)
    writer.line("STEP 3/9: RUN pip install --no-cache-dir -r requirements.txt")
    writer.flush()
    build.refresh_from_db()
    assert (build.step, build.step_description) == ("3/9", "RUN pip install --no-cache-dir -r requirements.txt")


@pytest.fixture
def long_log_build(server):
    """A build whose writer received 30,000 lines, more than the log keeps."""
    build = _build(server)
    writer = builds.BuildLogWriter(build.pk)
    for number in range(30_000):
        writer.line(f"line {number:08d}")
    writer.flush()
    build.refresh_from_db()
    return build


def test_log_writer_keeps_end_of_long_log(long_log_build):
    assert long_log_build.log.endswith("line 00029999\n")


def test_log_writer_caps_log_length(long_log_build):
    assert len(long_log_build.log) <= builds.LOG_LIMIT_CHARS


def test_log_writer_counts_dropped_characters(long_log_build):
    assert long_log_build.log_dropped + len(long_log_build.log) == 30_000 * len("line 00000000\n")


def test_build_progress_counts_finished_steps(server):
    assert ImageBuild(server=server, version=server.version, step="4/9").progress == pytest.approx(3 / 9)


def test_server_spec_takes_release_memory_limit(server):
    assert servers.build_spec(server).memory_mb == 512


def test_plan_resources_are_kept():
    plan, _ = plans.normalize("blue_green", {"resources": {"memory_mb": 768, "cpus": 1}}, {})
    assert plan["resources"] == {"memory_mb": 768, "cpus": 1.0}


def test_plan_resources_reject_small_memory():
    with pytest.raises(InvalidInput, match="plan.resources.memory_mb must be a whole number of MiB from 64"):
        plans.normalize("blue_green", {"resources": {"memory_mb": 8}}, {})


def test_plan_resources_reject_unknown_key():
    with pytest.raises(InvalidInput) as caught:
        plans.normalize("canary", {"steps": [{"weight": 10}], "resources": {"gpus": 1}}, {})
    assert caught.value.field.startswith("plan.resources")


def test_release_with_resources_on_local_runtime_is_rejected(server, user):
    from deployments.services import releases

    with pytest.raises(InvalidInput, match="The local runtime cannot limit memory_mb") as caught:
        releases.create_release(server.endpoint, server.version, plan={"resources": {"memory_mb": 512}}, actor=user)
    assert caught.value.field == "plan.resources"
