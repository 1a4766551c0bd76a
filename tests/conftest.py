"""Fixtures shared by the portal's tests: the demo model, users and API clients."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from rest_framework.test import APIClient


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory) -> Path:
    """The breast-cancer demo model saved as an MLflow model folder."""
    from mlops_portal import demo

    return demo.save_model(tmp_path_factory.mktemp("demo-model") / "model")


def zip_folder(folder: Path, destination: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(destination, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, prefix + str(path.relative_to(folder)))
    return destination


@pytest.fixture(scope="session")
def demo_model_zip(demo_model_dir, tmp_path_factory) -> Path:
    return zip_folder(demo_model_dir, tmp_path_factory.mktemp("demo-zip") / "model.zip")


def add_role(user, role: str):
    """Put `user` in the role's group; get_or_create because transactional tests flush migration data."""
    from django.contrib.auth.models import Group

    group, _ = Group.objects.get_or_create(name=role)
    user.groups.add(group)
    return user


@pytest.fixture
def user(django_user_model):
    """Dana, a data scientist: registers models and requests releases."""
    dana = django_user_model.objects.create_user(username="dana", password="a-long-test-password-1")
    return add_role(dana, "data scientist")


@pytest.fixture
def api_client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def stack_worker_env() -> dict[str, str]:
    """Extra environment for the integration stack's worker and beat (tests/integration/conftest.py).

    Override it where a test needs values known only at run time, such as a
    container engine's address.
    """
    return {}
