"""Housekeeping: resume stalled releases, stop idle servers, prune old counters.

Celery beat runs these periodically (see PERIODIC_TASKS in deployments.apps).
The scale-down of one server also runs as its own task when it is due.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import ModelServer, Release, TrafficSample
from deployments.runtimes import RuntimeFailure
from deployments.services import routing, servers
from deployments.services.releases import schedule_controller

logger = logging.getLogger("deployments.sweeps")

SAMPLE_RETENTION = timedelta(days=2)

# Outcomes of scale_down.
STOPPED = "stopped"
NOT_DUE = "not_due"
WAITING_FOR_GATEWAYS = "waiting_for_gateways"
KEPT = "kept"


def resume_stalled_releases() -> list[int]:
    """Start a new controller chain for running releases whose next run is overdue.

    A release whose row is locked has a controller step in progress, so it is
    skipped rather than waited for.
    """
    grace = timedelta(seconds=settings.PORTAL_STALL_GRACE)
    overdue = Release.objects.filter(
        state__in=Release.RUNNING_STATES,
        next_run_at__lt=timezone.now() - grace,
    ).values_list("pk", flat=True)

    resumed = []
    for release_id in overdue:
        with transaction.atomic():
            release = Release.objects.select_for_update(skip_locked=True).filter(pk=release_id).first()
            if release is None:
                continue
            stalled = release.next_run_at is not None and release.next_run_at < timezone.now() - grace
            if release.state in Release.RUNNING_STATES and stalled:
                logger.warning(
                    "Release %s (%s): controller run overdue since %s, resuming it with a new chain",
                    release.pk, release.state, release.next_run_at,
                )
                schedule_controller(release)
                resumed.append(release.pk)
    return resumed


def scale_down(server_id: int) -> str:
    """Stop one server if its scale-down time has passed and no gateway still sends it requests.

    The server row stays locked until the state is STOPPING, so a rollback
    that locks it afterwards finds the server going away and starts the
    version again instead of routing traffic to it.
    """
    with transaction.atomic():
        server = (
            ModelServer.objects.select_for_update(of=("self",))
            .select_related("endpoint", "version")
            .filter(pk=server_id)
            .first()
        )
        if server is None or server.stop_after is None or server.state in (ModelServer.State.STOPPING, ModelServer.State.STOPPED):
            return KEPT
        if server.stop_after > timezone.now():
            return NOT_DUE
        if server.backends.filter(weight__gt=0).exists():
            return KEPT
        if server.unrouted_revision is not None and not routing.gateways_have(server.unrouted_revision):
            logger.info("Server %s: waiting for every gateway to apply route revision %s", server.pk, server.unrouted_revision)
            return WAITING_FOR_GATEWAYS

        previous_state = server.state
        server.state = ModelServer.State.STOPPING
        server.save(update_fields=["state"])

    try:
        servers.stop_server(server)
    except RuntimeFailure as exc:
        # Back to its earlier state, so that the periodic sweep tries again.
        logger.warning("Server %s (endpoint %s): stopping failed, will retry: %s", server.pk, server.endpoint.name, exc)
        ModelServer.objects.filter(pk=server.pk, state=ModelServer.State.STOPPING).update(state=previous_state)
        return KEPT
    return STOPPED


def stop_idle_servers() -> list[int]:
    """Stop every server past its scale-down time that no gateway sends requests to any more."""
    due = ModelServer.objects.filter(
        state__in=[ModelServer.State.STARTING, ModelServer.State.READY, ModelServer.State.FAILED],
        stop_after__lte=timezone.now(),
    ).values_list("pk", flat=True)
    return [server_id for server_id in due if scale_down(server_id) == STOPPED]


def prune_traffic_samples() -> int:
    deleted, _ = TrafficSample.objects.filter(created_at__lt=timezone.now() - SAMPLE_RETENTION).delete()
    return deleted
