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


@pytest.fixture
def make_release(environment, model_version):
    """Build a release whose stable server has all traffic and whose candidate server is ready.

    No process runs behind either server: the controller steps under test
    only change the route table and read counters. `state` PROGRESSING starts
    at step 0 as the controller leaves it once the candidate is ready.
    """
    from django.utils import timezone

    from deployments.models import Endpoint, ModelServer, Release, RouteBackend
    from deployments.services import plans, routing

    def build(strategy="canary", plan=None, analysis=None, state=Release.State.PROGRESSING, **fields):
        endpoint = Endpoint.objects.create(name="churn", environment=environment)
        stable_version = ModelVersion.objects.get(model=model_version.model, version=1)
        stable = ModelServer.objects.create(
            endpoint=endpoint, version=stable_version, runtime="local", state="ready", url="http://127.0.0.1:41001"
        )
        candidate = ModelServer.objects.create(
            endpoint=endpoint, version=model_version, runtime="local", state="ready", url="http://127.0.0.1:41002"
        )
        routing.set_traffic(endpoint, {stable: 100}, roles={stable.pk: RouteBackend.Role.STABLE})

        normalized_plan, normalized_analysis = plans.normalize(strategy, plan or {"steps": [{"weight": 10}]}, analysis)
        now = timezone.now()
        return Release.objects.create(
            endpoint=endpoint,
            version=model_version,
            stable_version=stable_version,
            stable_server=stable,
            candidate_server=candidate,
            strategy=strategy,
            plan=normalized_plan,
            analysis=normalized_analysis,
            state=state,
            started_at=now,
            step_started_at=now,
            **fields,
        )

    return build
