"""Runtime and runtime_config checks when environments are created through the API or edited in the admin."""

import pytest

from deployments.admin import EnvironmentAdminForm
from deployments.models import Environment
from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/environments/"
DOCKER_FIX = "set DOCKER_HOST on the web server and the workers, or choose local"


@pytest.fixture
def without_docker(settings):
    settings.DOCKER_HOST = None


@pytest.fixture
def with_docker(settings):
    settings.DOCKER_HOST = "unix:///var/run/docker.sock"


def create(world, **body):
    return client_for(world["ada"]).post(URL, {"name": "qa", **body}, content_type="application/json")


@pytest.fixture
def create_on_docker(world, with_docker):
    """Create an environment on the docker runtime, the one that applies memory and CPU limits."""
    return lambda **body: create(world, runtime="docker", **body)


# --- runtime ---


def test_environment_api_rejects_docker_without_host(world, without_docker):
    assert create(world, runtime="docker").status_code == 400


def test_environment_api_docker_error_names_field(world, without_docker):
    assert create(world, runtime="docker").json()["error"]["field"] == "runtime"


def test_environment_api_docker_error_gives_fix(world, without_docker):
    assert DOCKER_FIX in create(world, runtime="docker").json()["error"]["message"]


def test_environment_api_rejected_docker_stores_nothing(world, without_docker):
    create(world, runtime="docker")
    assert not Environment.objects.filter(name="qa").exists()


def test_environment_api_accepts_docker_with_host(world, with_docker):
    assert create(world, runtime="docker").status_code == 201


def test_environment_api_accepts_local_without_docker(world, without_docker):
    assert create(world, runtime="local").status_code == 201


def test_environment_api_rejects_unknown_runtime(world, with_docker):
    assert create(world, runtime="kubernetes").json()["error"]["field"] == "runtime"


# --- runtime_config ---


def test_environment_api_accepts_full_runtime_config(create_on_docker):
    config = {"workers": 2, "max_batch_size": 4096, "memory_mb": 512, "cpus": 0.5}
    response = create_on_docker(runtime_config=config)
    assert response.json()["runtime_config"] == config


def test_environment_api_accepts_whole_cpus(create_on_docker):
    assert create_on_docker(runtime_config={"cpus": 2}).status_code == 201


def test_environment_api_rejects_memory_limit_on_local_runtime(world):
    response = create(world, runtime="local", runtime_config={"memory_mb": 512})
    assert response.json()["error"]["message"] == (
        "runtime_config: The local runtime cannot limit memory_mb, so the limit would be ignored. "
        "Remove it, or use an environment on the docker runtime."
    )


def test_environment_api_accepts_workers_on_local_runtime(world):
    assert create(world, runtime="local", runtime_config={"workers": 2}).status_code == 201


@pytest.mark.parametrize("config", [[1, 2], "workers=2", 3, None])
def test_environment_api_rejects_non_object_config(world, config):
    response = create(world, runtime_config=config)
    assert response.json()["error"]["field"] == "runtime_config"


def test_environment_api_non_object_error_names_type(world):
    message = create(world, runtime_config=[1, 2]).json()["error"]["message"]
    assert message.startswith("runtime_config: Must be a JSON object")


def test_environment_api_rejects_unknown_config_key(world):
    message = create(world, runtime_config={"workers": 2, "gpus": 1}).json()["error"]["message"]
    assert message == "runtime_config: Unknown key 'gpus'. The allowed keys are workers, max_batch_size, memory_mb, cpus."


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("workers", 0),
        ("workers", 65),
        ("workers", 2.5),
        ("workers", "2"),
        ("workers", True),
        ("max_batch_size", 0),
        ("max_batch_size", 4097),
        ("memory_mb", 63),
        ("memory_mb", 1048577),
        ("memory_mb", 512.0),
        ("cpus", 0.05),
        ("cpus", 257),
        ("cpus", "1"),
        ("cpus", None),
    ],
)
def test_environment_api_rejects_bad_config_value(world, key, value):
    response = create(world, runtime_config={key: value})
    assert response.json()["error"]["message"].startswith(f"runtime_config: {key} must be")


@pytest.mark.parametrize(
    ("key", "value"),
    [("workers", 1), ("workers", 64), ("max_batch_size", 1), ("memory_mb", 64), ("memory_mb", 1048576), ("cpus", 0.1), ("cpus", 256)],
)
def test_environment_api_accepts_config_bounds(create_on_docker, key, value):
    assert create_on_docker(runtime_config={key: value}).status_code == 201


def test_environment_api_config_error_shows_value(world):
    message = create(world, runtime_config={"workers": 100}).json()["error"]["message"]
    assert message == (
        "runtime_config: workers must be a whole number of worker processes per model server from 1 to 64, "
        "such as 2, but got 100."
    )


# --- admin ---


def admin_form(**data) -> EnvironmentAdminForm:
    fields = {"name": "qa", "runtime": "local", "runtime_config": "{}", "approvals_required": 1, **data}
    return EnvironmentAdminForm(data=fields)


def test_environment_admin_rejects_docker_without_host(db, without_docker):
    form = admin_form(runtime="docker")
    assert DOCKER_FIX in form.errors["runtime"][0]


def test_environment_admin_accepts_docker_with_host(db, with_docker):
    assert admin_form(runtime="docker").is_valid()


def test_environment_admin_rejects_unknown_config_key(db):
    form = admin_form(runtime_config='{"gpus": 1}')
    assert form.errors["runtime_config"][0].startswith("Unknown key 'gpus'")


def test_environment_admin_rejects_non_object_config(db):
    form = admin_form(runtime_config="[1]")
    assert form.errors["runtime_config"][0].startswith("Must be a JSON object")


def test_environment_admin_rejects_bad_config_value(db):
    form = admin_form(runtime_config='{"memory_mb": 10}')
    assert form.errors["runtime_config"][0].startswith("memory_mb must be")


def test_environment_admin_rejects_cpu_limit_on_local_runtime(db):
    form = admin_form(runtime_config='{"cpus": 1}')
    assert form.errors["runtime_config"][0].startswith("The local runtime cannot limit cpus")


def test_environment_admin_stores_empty_config_as_object(db):
    form = admin_form(runtime_config="")
    assert form.is_valid()
    assert form.save().runtime_config == {}


def test_environment_admin_page_shows_runtime_error(world, without_docker):
    response = client_for(world["ada"]).post(
        "/admin/deployments/environment/add/",
        {"name": "qa", "runtime": "docker", "runtime_config": "{}", "approvals_required": 1},
    )
    assert DOCKER_FIX in response.content.decode()
