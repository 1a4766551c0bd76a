import pytest

from deployments.models import Environment
from registry.models import Artifact, ModelVersion, RegisteredModel


@pytest.fixture
def environment(db):
    return Environment.objects.create(name="development")


@pytest.fixture
def production(db):
    return Environment.objects.create(name="production", requires_approval=True)


@pytest.fixture
def model_version(db):
    """A ready version row with a stored artifact digest; no file behind it, since nothing is started."""
    model = RegisteredModel.objects.create(name="churn", last_version=2)
    artifact = Artifact.objects.create(sha256="a" * 64, size=10, file="artifacts/aa/x.zip")
    ModelVersion.objects.create(model=model, version=1, artifact=artifact, status="ready", source="upload")
    return ModelVersion.objects.create(model=model, version=2, artifact=artifact, status="ready", source="upload")
