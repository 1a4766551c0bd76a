"""The Docker runtime against a real engine: build, cache, run, predict, stop.

Skipped when no engine responds (see conftest.py). A cold build of the
scikit-learn image takes about a minute on 2 cores; the other builds reuse its
layers.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import pytest

from deployments.runtimes.base import RuntimeFailure, ServerHandle, ServerSpec
from deployments.runtimes.docker import DockerRuntime
from deployments.runtimes.docker_image import STEP_PATTERN, hash_tree

from .conftest import engine_url

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 60


def make_spec(model_dir, server_id: int, version: int, **changes) -> ServerSpec:
    return ServerSpec(
        server_id=server_id,
        endpoint="breast-cancer",
        model="breast-cancer-classifier",
        version=version,
        model_dir=model_dir,
        artifact_sha256=changes.pop("artifact_sha256", hash_tree(model_dir)),
        model_name="breast-cancer",
        memory_mb=changes.pop("memory_mb", 768),
        cpus=changes.pop("cpus", 1.0),
        **changes,
    )


def wait_ready(runtime: DockerRuntime, handle: ServerHandle) -> float:
    """Poll health until the server is ready; return the seconds it took."""
    started = time.monotonic()
    while True:
        health = runtime.health(handle)
        if health.ready:
            return time.monotonic() - started
        assert health.alive, f"server {handle.server_id} died: {health.detail}\n{runtime.logs(handle)}"
        assert time.monotonic() - started < READY_TIMEOUT_SECONDS, (
            f"server {handle.server_id} not ready after {READY_TIMEOUT_SECONDS} s: {health.detail}\n{runtime.logs(handle)}"
        )
        time.sleep(0.2)


def predict(url: str, frame) -> list:
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))}).encode()
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["predictions"]


@pytest.fixture(scope="module")
def prepared_v1(runtime, sklearn_model):
    """The image of version 1, built once for the tests in this module."""
    model_dir, _, _ = sklearn_model
    lines = []
    started = time.monotonic()
    prepared = runtime.prepare(make_spec(model_dir, server_id=1, version=1), lines.append)
    logger.info("version 1 image prepared in %.1f s (built=%s)", time.monotonic() - started, prepared["built"])
    return prepared, lines


def test_prepare_builds_and_logs(prepared_v1, engine, instance):
    prepared, lines = prepared_v1

    assert prepared["built"] is True
    assert any(STEP_PATTERN.match(line) for line in lines), "no build step in the streamed log"
    assert all("\n" not in line for line in lines)

    image = engine.images.get(prepared["image"])
    assert image.labels["mlops-portal.instance"] == instance
    assert image.labels["mlops-portal.model"] == "breast-cancer-classifier"
    assert image.labels["mlops-portal.version"] == "1"
    assert image.attrs["Config"]["User"] == "model-server"
    assert image.attrs["Config"]["StopSignal"] == "SIGINT"


def test_prepare_reuses_image(prepared_v1, runtime, sklearn_model):
    model_dir, _, _ = sklearn_model
    prepared, _ = prepared_v1
    lines = []

    started = time.monotonic()
    again = runtime.prepare(make_spec(model_dir, server_id=9, version=1), lines.append)
    seconds = time.monotonic() - started

    assert again["built"] is False
    assert again["image"] == prepared["image"]
    assert again["image_id"] == prepared["image_id"]
    assert not any(STEP_PATTERN.match(line) for line in lines)
    assert seconds < 5, f"a cache hit took {seconds:.1f} s"


def test_failed_build_names_step(runtime, sklearn_model, tmp_path):
    model_dir, _, _ = sklearn_model
    broken = tmp_path / "model"
    broken.mkdir()
    for path in model_dir.iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    with (broken / "requirements.txt").open("a") as requirements:
        requirements.write("\nno-such-package-for-mlops-portal==1.0\n")

    with pytest.raises(RuntimeFailure) as failure:
        runtime.prepare(make_spec(broken, server_id=3, version=3), lambda line: None)

    message = str(failure.value)
    assert "failed at step" in message
    assert "pip install" in message
    assert "no-such-package-for-mlops-portal" in message


def test_build_timeout(engine, wheelhouse, server_package, instance, sklearn_model):
    model_dir, _, _ = sklearn_model
    runtime = DockerRuntime(
        base_url=engine_url(),
        wheelhouse=wheelhouse,
        instance=instance,
        server_package=server_package,
        build_timeout=0.5,
    )

    started = time.monotonic()
    with pytest.raises(RuntimeFailure, match=r"timed out after 0.5 s at"):
        runtime.prepare(make_spec(model_dir, server_id=4, version=4, artifact_sha256="4" * 64), lambda line: None)
    seconds = time.monotonic() - started
    runtime.close()

    assert seconds < 15, f"the timed-out build returned after {seconds:.1f} s"


def test_missing_base_image(engine, wheelhouse, server_package, instance, sklearn_model):
    model_dir, _, _ = sklearn_model
    runtime = DockerRuntime(
        base_url=engine_url(),
        base_image="localhost/mlops-portal-no-such-base:none",
        wheelhouse=wheelhouse,
        instance=instance,
        server_package=server_package,
    )

    with pytest.raises(RuntimeFailure, match="Base image localhost/mlops-portal-no-such-base:none not found"):
        runtime.prepare(make_spec(model_dir, server_id=5, version=5), lambda line: None)
    runtime.close()


def test_two_servers_side_by_side(prepared_v1, runtime, engine, instance, sklearn_model):
    model_dir, pipeline, features = sklearn_model
    prepared, _ = prepared_v1
    rows = features.sample(20, random_state=0)
    expected = pipeline.predict(rows).tolist()

    # Version 2 has the same model files, so only the model layer and labels are new.
    spec_v2 = make_spec(model_dir, server_id=2, version=2)
    started = time.monotonic()
    prepared_v2 = runtime.prepare(spec_v2, lambda line: None)
    logger.info("version 2 image prepared in %.1f s", time.monotonic() - started)
    assert prepared_v2["image"] != prepared["image"]

    spec_v1 = make_spec(model_dir, server_id=1, version=1)
    handles = [runtime.start(spec_v1, prepared), runtime.start(spec_v2, prepared_v2)]
    for handle in handles:
        seconds = wait_ready(runtime, handle)
        logger.info("server %s ready %.1f s after start()", handle.server_id, seconds)

    assert handles[0].url != handles[1].url
    for handle in handles:
        assert handle.url.startswith("http://127.0.0.1:")
        assert predict(handle.url, rows) == expected
        assert runtime.logs(handle).strip(), f"server {handle.server_id} wrote no log"

    container = engine.containers.get(handles[0].ref["container_id"])
    assert container.labels["mlops-portal.server-id"] == "1"
    assert container.labels["mlops-portal.instance"] == instance
    assert container.labels["mlops-portal.version"] == "1"
    assert container.attrs["HostConfig"]["Memory"] == 768 * 1024 * 1024
    assert container.attrs["HostConfig"]["NanoCpus"] == 1_000_000_000
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"

    # start() again adopts the running container instead of starting a second one.
    adopted = runtime.start(spec_v1, prepared)
    assert adopted.ref["container_id"] == handles[0].ref["container_id"]
    assert adopted.url == handles[0].url

    # A runtime object in another process (a fresh worker) finds both servers by label.
    fresh = DockerRuntime(base_url=engine_url(), instance=instance, wheelhouse=runtime.sources.wheelhouse)
    found = {handle.server_id: handle for handle in fresh.list_servers()}
    assert sorted(found) == [1, 2]
    assert found[2].url == handles[1].url
    fresh.close()

    # A stopped container is reported as not alive, and start() brings it back.
    container.stop(timeout=10)
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0, "the server did not exit cleanly on its stop signal"
    health = runtime.health(handles[0])
    assert not health.alive
    assert "exited" in health.detail
    restarted = runtime.start(spec_v1, prepared)
    assert restarted.ref["container_id"] == handles[0].ref["container_id"]
    wait_ready(runtime, restarted)
    assert predict(restarted.url, rows) == expected

    for handle in (restarted, handles[1]):
        runtime.stop(handle, grace_seconds=10)
        runtime.stop(handle, grace_seconds=10)
        health = runtime.health(handle)
        assert not health.alive
        assert "not found" in health.detail

    assert runtime.list_servers(include_stopped=True) == []


def test_server_on_user_network(prepared_v1, runtime, engine, wheelhouse, server_package, instance, sklearn_model):
    model_dir, _, _ = sklearn_model
    prepared, _ = prepared_v1
    network = engine.networks.create(f"mlops-portal-{instance}", labels={"mlops-portal.instance": instance})
    networked = DockerRuntime(
        base_url=engine_url(),
        wheelhouse=wheelhouse,
        instance=instance,
        server_package=server_package,
        network=network.name,
    )
    spec = make_spec(model_dir, server_id=6, version=1)

    try:
        handle = networked.start(spec, prepared)
        assert handle.url == f"http://{networked.container_name(6)}:8080"
        wait_ready(networked, handle)

        # Another container on the network reaches the server by its container name.
        probe = engine.containers.run(
            prepared["image"],
            entrypoint=["python", "-c", f"import urllib.request; print(urllib.request.urlopen('{handle.url}/v2/health/ready').status)"],
            network=network.name,
            labels={"mlops-portal.instance": instance},
            remove=True,
        )
        assert probe.decode().strip() == "200"
    finally:
        for leftover in networked.list_servers(include_stopped=True):
            networked.stop(leftover)
        networked.close()
        network.remove()
