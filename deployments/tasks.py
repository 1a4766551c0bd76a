"""Celery tasks: thin wrappers that call the controller and the sweeps."""

from celery import shared_task

from deployments.services import controller, sweeps


@shared_task(acks_late=True, ignore_result=True)
def advance_release(release_id: int, token: int | None = None) -> None:
    delay = controller.advance(release_id, token)
    if delay is not None:
        advance_release.apply_async((release_id, token), countdown=delay)


@shared_task(ignore_result=True)
def resume_stalled_releases() -> list[int]:
    return sweeps.resume_stalled_releases()


@shared_task(ignore_result=True)
def stop_idle_servers() -> list[int]:
    return sweeps.stop_idle_servers()


@shared_task(ignore_result=True)
def prune_traffic_samples() -> int:
    return sweeps.prune_traffic_samples()
