"""The release controller: one idempotent step of a release per call.

A Celery task calls `advance` with the release id. `advance` locks the
release row and performs the step that the release's state calls for. It
records the step and returns the delay until the next one, or None when the
release is done.
A step that runs twice, because a worker died after doing it but before the
task was acknowledged, finds its work done and moves on.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import ModelServer, Release, RouteBackend
from deployments.runtimes import RuntimeFailure
from deployments.services import routing, servers
from deployments.services.events import change_state, record_event
from deployments.services.releases import get_release_for_update

logger = logging.getLogger("deployments.controller")

State = Release.State


def advance(release_id: int, token: int | None = None) -> float | None:
    """Run the release's next step and return the seconds until the one after, or None."""
    with transaction.atomic():
        release = get_release_for_update(release_id)
        if token is not None and token != release.run_token:
            logger.info("Release %s: dropping an outdated controller run (token %s, current %s)", release.pk, token, release.run_token)
            return None
        if release.state not in Release.ACTIVE_STATES:
            return None

        step = _STEPS[release.state]
        try:
            delay = step(release)
        except RuntimeFailure as exc:
            delay = fail(release, str(exc))

        release.next_run_at = timezone.now() + timedelta(seconds=delay) if delay is not None else None
        release.save(update_fields=["next_run_at", "updated_at"])
    return delay


def _start(release: Release) -> float:
    """Create the candidate's server row and move to building."""
    if release.candidate_server is None:
        release.candidate_server = servers.create_server(release.endpoint, release.version)
        release.save(update_fields=["candidate_server"])

    change_state(
        release,
        State.BUILDING,
        f"Preparing v{release.version.version} on the {release.candidate_server.runtime} runtime "
        f"(server {release.candidate_server.pk})",
        step_key="building",
        started_at=release.started_at or timezone.now(),
        step_started_at=timezone.now(),
    )
    return 0


def _build(release: Release) -> float:
    """Prepare and start the candidate server, then wait for it in deploying."""
    server = release.candidate_server
    if server.state == ModelServer.State.PENDING:
        servers.start_server(server)

    change_state(
        release,
        State.DEPLOYING,
        f"Started server {server.pk} for v{release.version.version} at {server.url}; waiting until it is ready",
        step_key="deploying",
        step_started_at=timezone.now(),
    )
    return settings.PORTAL_CONTROLLER_INTERVAL


def _deploy(release: Release) -> float | None:
    """Wait for the candidate to be ready and pass its smoke prediction, then switch traffic."""
    server = release.candidate_server
    if server.state == ModelServer.State.STARTING:
        health = servers.check_server(server)
        if server.state == ModelServer.State.FAILED:
            return fail(release, f"Server {server.pk} failed: {server.failure_reason}")
        if not health.ready:
            waited = (timezone.now() - release.step_started_at).total_seconds()
            if waited > settings.PORTAL_SERVER_READY_TIMEOUT:
                return fail(
                    release,
                    f"Server {server.pk} was not ready after {settings.PORTAL_SERVER_READY_TIMEOUT:.0f} s ({health.detail}).",
                )
            return settings.PORTAL_CONTROLLER_INTERVAL

    if server.state != ModelServer.State.READY:
        return fail(release, f"Server {server.pk} is {server.state}: {server.failure_reason or 'not ready'}")

    record_event(
        release,
        "server",
        f"Server {server.pk} for v{release.version.version} is ready and passed its smoke prediction",
        step_key="candidate-ready",
    )
    return _switch_all_traffic(release)


def _switch_all_traffic(release: Release) -> None:
    """Blue/green switch: all traffic to the candidate in one route-table change."""
    candidate = release.candidate_server
    revision = routing.set_traffic(release.endpoint, {candidate: 100}, roles={candidate.pk: RouteBackend.Role.STABLE})

    stop_after = timezone.now() + timedelta(seconds=settings.PORTAL_SCALE_DOWN_DELAY)
    release.endpoint.servers.filter(state__in=[ModelServer.State.STARTING, ModelServer.State.READY]).exclude(
        pk=candidate.pk
    ).filter(stop_after__isnull=True).update(stop_after=stop_after)

    record_event(
        release,
        "traffic",
        f"100% of traffic to v{release.version.version} (route revision {revision})",
        data={"revision": revision, "weights": {str(candidate.pk): 100}},
        step_key="traffic-100",
    )
    change_state(
        release,
        State.PROMOTED,
        f"v{release.version.version} is live on {release.endpoint.name}",
        step_key="promoted",
        canary_weight=100,
        finished_at=timezone.now(),
    )
    return None


def fail(release: Release, reason: str) -> None:
    """Mark the release failed, keep traffic on the stable version and stop the candidate soon."""
    candidate = release.candidate_server
    if candidate is not None and not candidate.backends.filter(weight__gt=0).exists():
        candidate.stop_after = timezone.now()
        candidate.save(update_fields=["stop_after"])

    change_state(release, State.FAILED, reason, failure_reason=reason, finished_at=timezone.now())
    logger.warning("Release %s failed: %s", release.pk, reason)
    return None


_STEPS = {
    State.APPROVED: _start,
    State.BUILDING: _build,
    State.DEPLOYING: _deploy,
}
