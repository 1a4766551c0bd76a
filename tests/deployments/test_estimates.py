"""Start-up estimates for the wizard, from earlier releases of the same environment."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import Environment, Release, ReleaseEvent
from deployments.services import estimates

pytestmark = pytest.mark.django_db


def _ready_after(release: Release, seconds: float, to_state: str = "progressing") -> None:
    """Record that the release left deploying `seconds` after it started."""
    started = timezone.now() - timedelta(minutes=10)
    Release.objects.filter(pk=release.pk).update(started_at=started)
    event = ReleaseEvent.objects.create(release=release, kind="state", from_state="deploying", to_state=to_state)
    ReleaseEvent.objects.filter(pk=event.pk).update(created_at=started + timedelta(seconds=seconds))


def test_startup_estimate_without_history_is_local_default(environment):
    assert estimates.startup_seconds(environment) == 30


def test_startup_estimate_without_history_is_docker_default(environment):
    environment.runtime = Environment.Runtime.DOCKER
    assert estimates.startup_seconds(environment) == 90


def test_startup_estimate_is_median_of_recent_releases(make_release):
    release = make_release()
    for seconds in (4, 6, 20):
        _ready_after(release, seconds)
    assert estimates.startup_seconds(release.endpoint.environment) == 6


def test_startup_estimate_ignores_failed_deployments(make_release):
    release = make_release()
    for seconds in (4, 6):
        _ready_after(release, seconds)
    _ready_after(release, 500, to_state="failed")
    assert estimates.startup_seconds(release.endpoint.environment) == 30
