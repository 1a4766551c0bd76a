"""Periodic housekeeping: resume stalled releases, stop idle servers, prune old counters."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from deployments.models import ModelServer, Release, TrafficSample
from deployments.services import routing, servers
from deployments.services.releases import schedule_controller

logger = logging.getLogger("deployments.sweeps")

# A controller run this late is taken as lost (its worker died or the broker dropped it).
STALL_GRACE = timedelta(seconds=15)
SAMPLE_RETENTION = timedelta(days=2)


def resume_stalled_releases() -> list[int]:
    """Start a new controller chain for active releases whose next run is overdue."""
    overdue = Release.objects.filter(
        state__in=Release.ACTIVE_STATES,
        next_run_at__lt=timezone.now() - STALL_GRACE,
    ).values_list("pk", flat=True)

    resumed = []
    for release_id in overdue:
        with transaction.atomic():
            release = Release.objects.select_for_update().get(pk=release_id)
            if release.state in Release.ACTIVE_STATES and release.next_run_at < timezone.now() - STALL_GRACE:
                logger.warning("Release %s: controller run overdue since %s; resuming", release.pk, release.next_run_at)
                schedule_controller(release)
                resumed.append(release.pk)
    return resumed


def stop_idle_servers() -> list[int]:
    """Stop servers past their scale-down time once every gateway has stopped sending them traffic."""
    due = ModelServer.objects.filter(
        state__in=[ModelServer.State.STARTING, ModelServer.State.READY, ModelServer.State.FAILED],
        stop_after__lte=timezone.now(),
    ).select_related("endpoint", "version")

    stopped = []
    for server in due:
        if server.backends.filter(weight__gt=0).exists():
            continue
        if server.unrouted_revision is not None and not routing.gateways_have(server.unrouted_revision):
            logger.info("Server %s: waiting for gateways to apply revision %s", server.pk, server.unrouted_revision)
            continue
        servers.stop_server(server)
        stopped.append(server.pk)
    return stopped


def prune_traffic_samples() -> int:
    deleted, _ = TrafficSample.objects.filter(created_at__lt=timezone.now() - SAMPLE_RETENTION).delete()
    return deleted
