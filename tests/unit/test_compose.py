"""docker-compose.yml: the services, volumes, health checks and engine access that the README promises.

No compose tool runs on the CI machines, so the file is parsed and checked
here (YAML merge keys resolved as compose resolves them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
SERVICES = {"postgres", "redis", "web", "worker", "beat", "gateway"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _environment(service: dict) -> dict:
    return service.get("environment") or {}


def test_compose_has_the_stack_services(compose):
    assert set(compose["services"]) == SERVICES


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_service_has_health_check(compose, name):
    assert compose["services"][name]["healthcheck"]["test"]


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_service_restarts(compose, name):
    assert compose["services"][name]["restart"] == "unless-stopped"


@pytest.mark.parametrize("volume", ["postgres-data", "redis-data", "portal-data"])
def test_compose_declares_volume(compose, volume):
    assert volume in compose["volumes"]


@pytest.mark.parametrize(("name", "mount"), [
    ("postgres", "postgres-data:/var/lib/postgresql/data"),
    ("redis", "redis-data:/data"),
    ("web", "portal-data:/var/lib/mlops-portal"),
    ("worker", "portal-data:/var/lib/mlops-portal"),
])
def test_compose_service_keeps_data_in_volume(compose, name, mount):
    assert mount in compose["services"][name]["volumes"]


def test_compose_worker_mounts_engine_socket(compose):
    assert "/var/run/docker.sock:/var/run/docker.sock" in compose["services"]["worker"]["volumes"]


@pytest.mark.parametrize("name", ["web", "beat", "gateway"])
def test_compose_only_worker_mounts_engine_socket(compose, name):
    assert not any("docker.sock" in volume for volume in compose["services"][name].get("volumes", []))


def test_compose_worker_uses_mounted_socket(compose):
    assert _environment(compose["services"]["worker"])["DOCKER_HOST"] == "unix:///var/run/docker.sock"


def test_compose_model_containers_join_named_network(compose):
    network = _environment(compose["services"]["worker"])["PORTAL_DOCKER_NETWORK"]
    assert compose["networks"]["default"]["name"] == network


@pytest.mark.parametrize("name", ["web", "worker", "beat"])
def test_compose_portal_services_use_postgres_and_redis(compose, name):
    environment = _environment(compose["services"][name])
    assert (environment["DATABASE_URL"].split("@")[1], environment["REDIS_URL"]) == (
        "postgres:5432/portal", "redis://redis:6379/0",
    )


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_publishes_ports_on_loopback_only(compose, name):
    ports = compose["services"][name].get("ports", [])
    assert all(port.startswith("127.0.0.1:") for port in ports)


@pytest.mark.parametrize("name", ["web", "worker", "beat", "gateway"])
def test_compose_portal_services_wait_for_healthy_dependencies(compose, name):
    conditions = {dependency["condition"] for dependency in compose["services"][name]["depends_on"].values()}
    assert conditions == {"service_healthy"}


def test_compose_secret_key_comes_from_env_file(compose):
    assert _environment(compose["services"]["web"])["DJANGO_SECRET_KEY"].startswith("${DJANGO_SECRET_KEY:?")
