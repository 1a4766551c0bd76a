"""The traffic moves of a release, shared by the controller and the actions people take.

Each function runs inside the caller's transaction on a locked release, so a
route change commits together with the state change and event that explain it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from deployments.models import ModelServer, Release, RouteBackend
from deployments.services import routing
from deployments.services.events import change_state, record_event

logger = logging.getLogger("deployments.rollout")

State = Release.State


def preview_route(release: Release) -> routing.PreviewRoute | None:
    preview = (release.plan or {}).get("preview")
    if not preview or release.candidate_server is None:
        return None
    return routing.PreviewRoute(release.candidate_server, preview["header"], preview["value"])


def set_canary_weight(release: Release, weight: Decimal) -> int:
    """Send `weight` percent of traffic to the candidate and the rest to the stable version."""
    stable, candidate = release.stable_server, release.candidate_server
    revision = routing.set_traffic(
        release.endpoint,
        {stable: Decimal(100) - weight, candidate: weight},
        roles={stable.pk: RouteBackend.Role.STABLE, candidate.pk: RouteBackend.Role.CANDIDATE},
        preview=preview_route(release),
    )
    release.canary_weight = weight
    release.save(update_fields=["canary_weight", "updated_at"])
    return revision


def promote_candidate(
    release: Release,
    message: str,
    *,
    actor=None,
    kind: str = "state",
    data: dict | None = None,
    step_key: str | None = None,
    **fields,
) -> int:
    """Switch all traffic to the candidate in one route change and mark the release promoted.

    The previous stable server keeps running for the plan's scale-down delay,
    so a rollback inside it is one route change.
    """
    candidate = release.candidate_server
    revision = routing.set_traffic(release.endpoint, {candidate: 100}, roles={candidate.pk: RouteBackend.Role.STABLE})
    record_event(
        release,
        "traffic",
        f"100% of traffic to v{release.version.version} (route revision {revision})",
        data={"revision": revision, "weights": {str(candidate.pk): 100.0}},
        step_key=None if step_key is None else f"{step_key}.traffic",
    )

    delay = scale_down_delay(release)
    for server in release.endpoint.servers.filter(state__in=[ModelServer.State.STARTING, ModelServer.State.READY]).exclude(pk=candidate.pk):
        schedule_scale_down(server, delay)

    change_state(
        release,
        State.PROMOTED,
        message,
        actor=actor,
        kind=kind,
        data={"revision": revision, **(data or {})},
        step_key=step_key,
        canary_weight=Decimal(100),
        finished_at=timezone.now(),
        next_run_at=None,
        **fields,
    )
    return revision


def return_to_stable(release: Release) -> int | None:
    """Send all traffic to the stable version in one route change and return the revision, or None if none was needed.

    The candidate leaves the route table, preview route included. Without a
    stable version (a first release) the endpoint is left without backends.
    """
    candidate_id = release.candidate_server_id
    if candidate_id is None or not RouteBackend.objects.filter(endpoint=release.endpoint, server_id=candidate_id).exists():
        return None

    stable = release.stable_server
    split = {stable: 100} if stable is not None else {}
    roles = {stable.pk: RouteBackend.Role.STABLE} if stable is not None else {}
    revision = routing.set_traffic(release.endpoint, split, roles=roles)
    release.canary_weight = Decimal(0)
    release.save(update_fields=["canary_weight", "updated_at"])
    return revision


def scale_down_delay(release: Release) -> float:
    """Return the seconds an old server keeps running after losing its traffic, from the plan or the setting."""
    return (release.plan or {}).get("scale_down_delay", settings.PORTAL_SCALE_DOWN_DELAY)


def schedule_scale_down(server: ModelServer, delay: float) -> None:
    """Stop `server` after `delay` seconds, once every gateway has stopped sending it requests.

    A task queued after commit stops it on time; the periodic sweep stops it
    if that task is lost.
    """
    from deployments.tasks import MAX_SCALE_DOWN_COUNTDOWN, scale_down_server

    server.stop_after = timezone.now() + timedelta(seconds=delay)
    server.save(update_fields=["stop_after"])
    server_id = server.pk
    countdown = min(delay, MAX_SCALE_DOWN_COUNTDOWN)
    transaction.on_commit(lambda: scale_down_server.apply_async((server_id,), countdown=countdown))
    logger.info("Server %s (endpoint %s) stops in %.1f s unless it gets traffic again", server.pk, server.endpoint_id, delay)
