"""Housekeeping against PostgreSQL: resuming stalled releases and scaling down servers once gateways left them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments.models import GatewayInstance, ModelServer, Release, RouteBackend
from deployments.services import routing, sweeps

pytestmark = pytest.mark.django_db


def _overdue(release, seconds: float) -> None:
    Release.objects.filter(pk=release.pk).update(next_run_at=timezone.now() - timedelta(seconds=seconds))


def test_resume_overdue_release_starts_new_chain(make_release, settings):
    settings.PORTAL_STALL_GRACE = 5
    release = make_release()
    _overdue(release, 10)
    assert sweeps.resume_stalled_releases() == [release.pk]


def test_resume_overdue_release_bumps_token(make_release, settings):
    settings.PORTAL_STALL_GRACE = 5
    release = make_release()
    _overdue(release, 10)
    sweeps.resume_stalled_releases()
    assert Release.objects.get(pk=release.pk).run_token == release.run_token + 1


def test_resume_ignores_release_within_grace(make_release, settings):
    settings.PORTAL_STALL_GRACE = 5
    release = make_release()
    _overdue(release, 2)
    assert sweeps.resume_stalled_releases() == []


def test_resume_ignores_paused_release(make_release, settings):
    settings.PORTAL_STALL_GRACE = 5
    release = make_release(state=Release.State.PAUSED)
    _overdue(release, 10)
    assert sweeps.resume_stalled_releases() == []


def _unrouted(release, stop_in: float = -1) -> ModelServer:
    """Route all traffic to the candidate, leaving the stable server due for scale-down in `stop_in` seconds."""
    candidate = release.candidate_server
    routing.set_traffic(release.endpoint, {candidate: 100}, roles={candidate.pk: RouteBackend.Role.STABLE})
    ModelServer.objects.filter(pk=release.stable_server_id).update(stop_after=timezone.now() + timedelta(seconds=stop_in))
    return ModelServer.objects.get(pk=release.stable_server_id)


def test_scale_down_stops_due_server(make_release):
    server = _unrouted(make_release())
    assert sweeps.scale_down(server.pk) == sweeps.STOPPED


def test_scale_down_marks_server_stopped(make_release):
    server = _unrouted(make_release())
    sweeps.scale_down(server.pk)
    assert ModelServer.objects.get(pk=server.pk).state == "stopped"


def test_scale_down_waits_until_due(make_release):
    server = _unrouted(make_release(), stop_in=30)
    assert sweeps.scale_down(server.pk) == sweeps.NOT_DUE


def test_scale_down_waits_for_lagging_gateway(make_release):
    server = _unrouted(make_release())
    GatewayInstance.objects.create(instance="gw:1", revision=server.unrouted_revision - 1, last_seen=timezone.now())
    assert sweeps.scale_down(server.pk) == sweeps.WAITING_FOR_GATEWAYS


def test_scale_down_ignores_gone_gateway(make_release):
    server = _unrouted(make_release())
    GatewayInstance.objects.create(instance="gw:1", revision=0, last_seen=timezone.now() - timedelta(minutes=5))
    assert sweeps.scale_down(server.pk) == sweeps.STOPPED


def test_scale_down_keeps_server_with_traffic(make_release):
    release = make_release()
    ModelServer.objects.filter(pk=release.stable_server_id).update(stop_after=timezone.now() - timedelta(seconds=1))
    assert sweeps.scale_down(release.stable_server_id) == sweeps.KEPT


def test_stop_idle_servers_returns_stopped_ids(make_release):
    server = _unrouted(make_release())
    assert sweeps.stop_idle_servers() == [server.pk]


def test_reconcile_leaves_local_rows_to_their_own_machine(settings, make_release):
    """Each machine lists only its own local processes, so a missing one is not marked failed."""
    settings.DOCKER_HOST = None
    release = make_release()
    sweeps.reconcile_servers()
    release.candidate_server.refresh_from_db()
    assert release.candidate_server.state == "ready"
