"""Build context, requirements and digest of model images; no engine needed."""

from __future__ import annotations

import dataclasses
import tarfile
from pathlib import Path

import pytest

from deployments.runtimes.base import RuntimeFailure, ServerSpec
from deployments.runtimes.docker_image import (
    BuildLog,
    ImageSources,
    create_build_context,
    merge_requirements,
    render_dockerfile,
    write_context_tar,
)

from .conftest import SERVER_PACKAGE

SERVER_LINES = ["mlflow-skinny==3.17.2", "numpy==2.4.6", "pandas==3.1.1", "uvicorn[standard]==0.55.0"]


@pytest.fixture
def model_dir(tmp_path) -> Path:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "MLmodel").write_text("flavors: {}\n")
    (model_dir / "model.skops").write_bytes(b"weights")
    (model_dir / "requirements.txt").write_text("mlflow==3.17.2\nnumpy==2.3.0\nscikit-learn==1.9.1\n")
    return model_dir


@pytest.fixture
def sources(tmp_path) -> ImageSources:
    server_requirements = tmp_path / "server-requirements.txt"
    server_requirements.write_text("# comment\n" + "\n".join(SERVER_LINES) + "\n")
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"wheel")
    return ImageSources(
        base_image="localhost/mlops-portal-base:bookworm",
        server_package=SERVER_PACKAGE,
        server_requirements=server_requirements,
        wheelhouse=wheelhouse,
    )


def make_spec(model_dir: Path, **changes) -> ServerSpec:
    spec = ServerSpec(
        server_id=1,
        endpoint="breast-cancer",
        model="Breast Cancer Classifier",
        version=3,
        model_dir=model_dir,
        artifact_sha256="a" * 64,
        model_name="breast-cancer",
    )
    return dataclasses.replace(spec, **changes)


def test_merge_model_pins_win():
    model_lines, server_lines = merge_requirements(["numpy==2.3.0", "scikit-learn==1.9.1"], SERVER_LINES, "m")

    assert model_lines == ["numpy==2.3.0", "scikit-learn==1.9.1"]
    assert "numpy==2.4.6" not in server_lines
    assert "pandas==3.1.1" in server_lines


def test_merge_keeps_server_mlflow_pin():
    model_lines, server_lines = merge_requirements(["mlflow==3.10.0", "MLflow_Skinny==3.10.0"], SERVER_LINES, "m")

    assert model_lines == []
    assert "mlflow-skinny==3.17.2" in server_lines


def test_merge_drops_pip_options():
    model_lines, _ = merge_requirements(["--extra-index-url https://example.invalid/simple", "numpy==2.3.0"], [], "m")

    assert model_lines == ["numpy==2.3.0"]


def test_merge_rejects_invalid_line():
    with pytest.raises(RuntimeFailure, match="Invalid line 'numpy 2.4'"):
        merge_requirements(["numpy 2.4"], [], "m")


def test_dockerfile_offline_by_default(sources):
    dockerfile = render_dockerfile(sources)

    assert "--no-index --find-links /tmp/wheelhouse" in dockerfile
    assert "--mount=type=bind,source=wheelhouse,target=/tmp/wheelhouse" in dockerfile
    assert "USER model-server" in dockerfile
    assert "STOPSIGNAL SIGINT" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert '"python", "-m", "model_server", "--model-dir", "/model"' in dockerfile


def test_dockerfile_with_index_and_ca(sources, tmp_path):
    ca_bundle = tmp_path / "ca.crt"
    ca_bundle.write_text("certificate")
    dockerfile = render_dockerfile(
        dataclasses.replace(sources, wheelhouse=None, index_url="https://pypi.example/simple", ca_bundle=ca_bundle)
    )

    assert "--no-index" not in dockerfile
    assert "--index-url https://pypi.example/simple" in dockerfile
    assert "--cert /tmp/ca-bundle.crt" in dockerfile
    assert "source=wheelhouse" not in dockerfile


def test_context_needs_package_source(model_dir, sources):
    with pytest.raises(RuntimeFailure, match="No package source"):
        create_build_context(make_spec(model_dir), dataclasses.replace(sources, wheelhouse=None), "sha256:base", "t")


def test_context_needs_mlmodel(tmp_path, sources):
    with pytest.raises(RuntimeFailure, match="no MLmodel file"):
        create_build_context(make_spec(tmp_path), sources, "sha256:base", "t")


def test_context_tag_and_labels(model_dir, sources):
    context = create_build_context(make_spec(model_dir), sources, "sha256:base", "Prod EU")

    assert context.tag == f"localhost/mlops-portal-prod-eu/breast-cancer-classifier:v3-{context.digest[:16]}"
    assert context.labels["mlops-portal.instance"] == "Prod EU"
    assert context.labels["mlops-portal.model"] == "Breast Cancer Classifier"
    assert context.labels["mlops-portal.version"] == "3"
    assert context.model_requirements == ["numpy==2.3.0", "scikit-learn==1.9.1"]


def test_digest_same_inputs_same_tag(model_dir, sources):
    first = create_build_context(make_spec(model_dir), sources, "sha256:base", "t")
    second = create_build_context(make_spec(model_dir, server_id=7, endpoint="other"), sources, "sha256:base", "t")

    assert first.tag == second.tag


def test_digest_changes_with_each_input(model_dir, sources, tmp_path):
    baseline = create_build_context(make_spec(model_dir), sources, "sha256:base", "t").digest

    changed_server = tmp_path / "server" / "model_server"
    changed_server.mkdir(parents=True)
    (changed_server / "__main__.py").write_text("print('changed')\n")

    other_requirements = tmp_path / "other-requirements.txt"
    other_requirements.write_text("pandas==3.0.0\n")

    variants = {
        "artifact": (make_spec(model_dir, artifact_sha256="b" * 64), sources, "sha256:base"),
        "base image": (make_spec(model_dir), sources, "sha256:other-base"),
        "server code": (make_spec(model_dir), dataclasses.replace(sources, server_package=changed_server), "sha256:base"),
        "server requirements": (
            make_spec(model_dir),
            dataclasses.replace(sources, server_requirements=other_requirements),
            "sha256:base",
        ),
        "package source": (make_spec(model_dir), dataclasses.replace(sources, index_url="https://pypi.example/simple"), "sha256:base"),
    }
    for name, (spec, variant_sources, base_id) in variants.items():
        digest = create_build_context(spec, variant_sources, base_id, "t").digest
        assert digest != baseline, f"changing the {name} did not change the digest"

    (model_dir / "requirements.txt").write_text("numpy==2.2.0\n")
    assert create_build_context(make_spec(model_dir), sources, "sha256:base", "t").digest != baseline


def test_context_tar_contents(model_dir, sources, tmp_path):
    (model_dir / "__pycache__").mkdir()
    (model_dir / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"bytecode")
    context = create_build_context(make_spec(model_dir), sources, "sha256:base", "t")

    archive = tmp_path / "context.tar"
    with archive.open("wb") as fileobj:
        write_context_tar(context, fileobj)

    with tarfile.open(archive) as tar:
        members = {member.name: member for member in tar.getmembers()}
        model_requirements = tar.extractfile("requirements/model.txt").read().decode()

    for name in (
        "Dockerfile",
        "requirements/server.txt",
        "model/MLmodel",
        "model/model.skops",
        "server/model_server/__main__.py",
        "wheelhouse/numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl",
    ):
        assert name in members, f"{name} missing from the build context"
    assert not [name for name in members if "__pycache__" in name]
    assert {member.uid for member in members.values()} == {0}
    assert model_requirements == "numpy==2.3.0\nscikit-learn==1.9.1\n"


def test_build_log_splits_chunks_and_tracks_step():
    lines = []
    build_log = BuildLog(lines.append)

    build_log.feed("STEP 1/3: FROM base\n--> ab")
    build_log.feed("c\nSTEP 2/3: RUN    pip install\n\nCollecting x")
    build_log.flush()

    assert lines == ["STEP 1/3: FROM base", "--> abc", "STEP 2/3: RUN    pip install", "Collecting x"]
    assert build_log.step == "step 2/3 (RUN pip install)"
    assert build_log.tail == ["STEP 2/3: RUN    pip install", "Collecting x"]
