"""Housekeeping: resume stalled releases, stop idle servers, reconcile runtimes, prune old counters.

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
from deployments.runtimes import RuntimeFailure, available_runtimes, get_runtime
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


def reconcile_servers() -> dict[str, list[int]]:
    """Match what each runtime runs with the model server rows, and repair the difference.

    A worker that dies between starting a container and storing its state,
    or a stop that failed, leaves a server running that no row wants: it is
    removed. A row that counts as running whose container is gone (removed by
    hand, lost with the engine) is marked failed, where the runtime's view is
    the same from every worker. Rows are read before the runtime is asked, so
    a server started meanwhile is never taken for an orphan.
    """
    removed: list[int] = []
    failed: list[int] = []
    for name in available_runtimes():
        try:
            runtime = get_runtime(name)
            running_rows = set(
                ModelServer.objects.filter(
                    runtime=name, state__in=[ModelServer.State.STARTING, ModelServer.State.READY]
                ).values_list("pk", flat=True)
            )
            handles = runtime.list_servers(include_stopped=True)
        except Exception as exc:  # an engine that is down raises its client's own error types
            logger.warning("Reconcile: the %s runtime cannot list its servers: %s", name, exc)
            continue

        listed = {handle.server_id: handle for handle in handles}
        states = dict(ModelServer.objects.filter(pk__in=listed).values_list("pk", "state"))
        for server_id, handle in listed.items():
            if states.get(server_id, ModelServer.State.STOPPED) != ModelServer.State.STOPPED:
                continue
            logger.warning(
                "Reconcile: server %s runs on the %s runtime (%s) but its row is %s; removing it",
                server_id, name, handle.ref.get("container_name") or handle.url, states.get(server_id, "gone"),
            )
            try:
                runtime.stop(handle, grace_seconds=5)
            except RuntimeFailure as exc:
                logger.warning("Reconcile: removing server %s failed, will retry: %s", server_id, exc)
                continue
            removed.append(server_id)

        if not runtime.shared_view:
            continue
        for server_id in sorted(running_rows - set(listed)):
            reason = f"The {name} runtime no longer runs this server (its container is gone)."
            changed = ModelServer.objects.filter(
                pk=server_id, state__in=[ModelServer.State.STARTING, ModelServer.State.READY]
            ).update(state=ModelServer.State.FAILED, failure_reason=reason)
            if changed:
                logger.warning("Reconcile: server %s is missing from the %s runtime; marked failed", server_id, name)
                failed.append(server_id)

    return {"removed": removed, "failed": failed}


def prune_traffic_samples() -> int:
    deleted, _ = TrafficSample.objects.filter(created_at__lt=timezone.now() - SAMPLE_RETENTION).delete()
    return deleted
