"""Concurrent registrations of one model on PostgreSQL: distinct consecutive numbers, no failures."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from registry.models import Artifact, ModelVersion, RegisteredModel
from registry.services import versions

pytestmark = pytest.mark.django_db(transaction=True)

REGISTRATIONS = 100
THREADS = 16


def _register_many(name: str, zip_path, count: int = REGISTRATIONS) -> list:
    """Register `count` versions of `name` from THREADS threads; return each result or exception."""

    def register(_):
        try:
            return versions.register_from_zip(name, zip_path).version
        except Exception as exc:  # noqa: BLE001 - the test reports every failure
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(register, range(count)))


@pytest.fixture
def concurrent_results(postgresql_only, demo_model_zip):
    return _register_many("concurrent", demo_model_zip)


def test_concurrent_registrations_all_succeed(concurrent_results):
    failures = [result for result in concurrent_results if isinstance(result, Exception)]
    assert failures == []


def test_concurrent_registrations_get_consecutive_numbers(concurrent_results):
    assert sorted(concurrent_results) == list(range(1, REGISTRATIONS + 1))


def test_concurrent_registrations_store_one_row_each(concurrent_results):
    assert ModelVersion.objects.filter(model__name="concurrent").count() == REGISTRATIONS


def test_concurrent_registrations_create_one_model(concurrent_results):
    assert RegisteredModel.objects.filter(name_key="concurrent").count() == 1


def test_concurrent_registrations_share_one_artifact(concurrent_results):
    assert Artifact.objects.count() == 1


def test_concurrent_registrations_advance_last_version(concurrent_results):
    assert RegisteredModel.objects.get(name_key="concurrent").last_version == REGISTRATIONS


@pytest.fixture
def failed_results(postgresql_only, tmp_path):
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    return _register_many("half", broken, count=20)


def test_concurrent_bad_uploads_all_fail(failed_results):
    assert all(isinstance(result, Exception) for result in failed_results)


def test_concurrent_bad_uploads_leave_no_model(failed_results):
    assert not RegisteredModel.objects.filter(name_key="half").exists()
