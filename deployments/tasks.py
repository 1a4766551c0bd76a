"""Celery tasks: thin wrappers that call the controller and the sweeps.

Tasks are acknowledged after they finish (CELERY_TASK_ACKS_LATE) and given
back to the broker when their worker process dies, so a lost run is delivered
again. The run token in the controller makes a second delivery harmless.
"""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.utils import timezone

from deployments.models import ModelServer
from deployments.services import builds, controller, sweeps

logger = logging.getLogger("deployments.tasks")

# How often a server whose scale-down is due checks again whether every
# gateway has stopped sending it requests.
GATEWAY_WAIT_RETRY_SECONDS = 0.5
# Longer waits are split into checks this far apart, because the broker keeps
# a countdown task unacknowledged and redelivers it after its visibility timeout.
MAX_SCALE_DOWN_COUNTDOWN = 30.0


@shared_task(
    acks_late=True,
    ignore_result=True,
    soft_time_limit=settings.PORTAL_CONTROLLER_STEP_TIMEOUT,
    time_limit=settings.PORTAL_CONTROLLER_STEP_TIMEOUT + 20,
)
def advance_release(release_id: int, token: int | None = None) -> None:
    """Run one controller step and queue the next run with the token the step handed out."""
    try:
        result = controller.advance(release_id, token)
    except SoftTimeLimitExceeded:
        # The step's transaction rolled back, and the stall sweep starts a new chain.
        logger.error(
            "Release %s: a controller step ran longer than %.0f s and was stopped, so the stall sweep resumes it",
            release_id, settings.PORTAL_CONTROLLER_STEP_TIMEOUT,
        )
        return

    if result is not None:
        delay, next_token = result
        advance_release.apply_async((release_id, next_token), countdown=delay)


@shared_task(acks_late=True, ignore_result=True)
def scale_down_server(server_id: int) -> None:
    """Stop a server once its scale-down time has come and no gateway routes to it, checking again until then."""
    outcome = sweeps.scale_down(server_id)
    if outcome == sweeps.WAITING_FOR_GATEWAYS:
        scale_down_server.apply_async((server_id,), countdown=GATEWAY_WAIT_RETRY_SECONDS)
    elif outcome == sweeps.NOT_DUE:
        stop_after = ModelServer.objects.filter(pk=server_id).values_list("stop_after", flat=True).first()
        if stop_after is not None:
            remaining = (stop_after - timezone.now()).total_seconds()
            scale_down_server.apply_async((server_id,), countdown=min(max(remaining, 0.0), MAX_SCALE_DOWN_COUNTDOWN))


@shared_task(ignore_result=True)
def resume_stalled_releases() -> list[int]:
    return sweeps.resume_stalled_releases()


@shared_task(ignore_result=True)
def stop_idle_servers() -> list[int]:
    return sweeps.stop_idle_servers()


@shared_task(ignore_result=True)
def prune_traffic_samples() -> int:
    return sweeps.prune_traffic_samples()


@shared_task(
    acks_late=True,
    ignore_result=True,
    soft_time_limit=settings.PORTAL_DOCKER_BUILD_TIMEOUT + 60,
    time_limit=settings.PORTAL_DOCKER_BUILD_TIMEOUT + 90,
)
def build_server_image(build_id: int) -> None:
    """Build (or reuse) the image of one model server; the release controller polls the outcome."""
    builds.run_build(build_id)


@shared_task(ignore_result=True)
def reconcile_servers() -> dict[str, list[int]]:
    return sweeps.reconcile_servers()
