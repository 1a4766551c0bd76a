"""Fixtures for tests that build images and run containers on a real engine.

The engine is the one DOCKER_HOST names, or else the Podman API service that
.ci/container-engine starts under var/podman/. Tests that need it are skipped
with the reason when no engine responds there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import docker.errors
import pytest

from deployments.runtimes.docker import DEFAULT_BASE_IMAGE, DockerRuntime
from deployments.runtimes.docker_image import LABEL_INSTANCE

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGE = REPOSITORY_ROOT / "model_server"


def engine_url() -> str:
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    return f"unix://{REPOSITORY_ROOT / 'var' / 'podman' / 'podman.sock'}"


@pytest.fixture(scope="session")
def engine() -> docker.DockerClient:
    url = engine_url()
    try:
        client = docker.DockerClient(base_url=url, timeout=10)
        client.ping()
    except docker.errors.DockerException as error:
        pytest.skip(f"no container engine responds at {url} ({error}); start one with .ci/container-engine")

    try:
        client.images.get(DEFAULT_BASE_IMAGE)
    except docker.errors.ImageNotFound:
        client.close()
        pytest.skip(f"base image {DEFAULT_BASE_IMAGE} not found at {url}; build it with .ci/container-engine")

    yield client
    client.close()


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Return the wheelhouse, downloading it with .ci/wheelhouse when it is missing or stale."""
    result = subprocess.run(
        [str(REPOSITORY_ROOT / ".ci" / "wheelhouse")],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f".ci/wheelhouse failed:\n{result.stderr}"
    return Path(result.stdout.strip().split("=", 1)[1])


@pytest.fixture(scope="session")
def server_package() -> Path:
    return SERVER_PACKAGE


@pytest.fixture(scope="session")
def instance() -> str:
    """A portal instance name of this test session; every image and container it creates carries it."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def runtime(engine, wheelhouse, server_package, instance):
    runtime = DockerRuntime(
        base_url=engine_url(),
        wheelhouse=wheelhouse,
        instance=instance,
        server_package=server_package,
        build_timeout=600,
    )
    yield runtime

    runtime.remove_all(images=True)
    left = engine.containers.list(all=True, filters={"label": f"{LABEL_INSTANCE}={instance}"})
    left += engine.images.list(filters={"label": f"{LABEL_INSTANCE}={instance}"})
    runtime.close()
    assert not left, f"left behind after cleanup: {left}"


@pytest.fixture(scope="session")
def sklearn_model(tmp_path_factory):
    """Save a StandardScaler + LogisticRegression pipeline on the breast cancer data as an MLflow model."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features, target = load_breast_cancer(return_X_y=True, as_frame=True)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, target)

    model_dir = tmp_path_factory.mktemp("breast-cancer") / "model"
    mlflow.sklearn.save_model(
        pipeline,
        model_dir,
        signature=infer_signature(features, pipeline.predict(features)),
        input_example=features.head(3),
    )
    return model_dir, pipeline, features

