import pytest

from deployments.models import Environment
from registry.models import Artifact, ModelVersion, RegisteredModel


@pytest.fixture
def environment(db):
    environment, _ = Environment.objects.get_or_create(name="development")
    return environment


@pytest.fixture
def production(db):
    environment, _ = Environment.objects.update_or_create(name="production", defaults={"requires_approval": True})
    return environment


@pytest.fixture
def model_version(db):
    """A ready version row with a stored artifact digest; no file behind it, since nothing is started."""
    model = RegisteredModel.objects.create(name="churn", last_version=2)
    artifact = Artifact.objects.create(sha256="a" * 64, size=10, file="artifacts/aa/x.zip")
    ModelVersion.objects.create(model=model, version=1, artifact=artifact, status="ready", source="upload")
    return ModelVersion.objects.create(model=model, version=2, artifact=artifact, status="ready", source="upload")
