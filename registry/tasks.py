from celery import shared_task

from registry.services import validation


@shared_task(acks_late=True)
def validate_version(version_id: int) -> str:
    return validation.validate_version(version_id)
