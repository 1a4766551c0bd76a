"""Recording what happens to releases; the timeline and the audit log read these rows."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction

from audit.services import record_action
from deployments.models import Release, ReleaseEvent

logger = logging.getLogger("deployments.events")


def record_event(
    release: Release,
    kind: str,
    message: str,
    *,
    actor=None,
    from_state: str = "",
    to_state: str = "",
    data: dict | None = None,
    step_key: str | None = None,
) -> ReleaseEvent | None:
    """Store an event; with a step_key, an event already recorded for that step is kept and None returned."""
    try:
        with transaction.atomic():
            event = ReleaseEvent.objects.create(
                release=release,
                kind=kind,
                message=message,
                actor=actor,
                from_state=from_state,
                to_state=to_state,
                data=data or {},
                step_key=step_key,
            )
    except IntegrityError:
        if step_key is None:
            raise
        logger.info("Release %s: step %s already recorded", release.pk, step_key)
        return None

    record_action(
        actor,
        f"release.{kind}",
        release,
        message,
        endpoint=release.endpoint.name,
        model=release.version.model.name,
        data={"from_state": from_state, "to_state": to_state, **(data or {})},
    )
    logger.info("Release %s (%s): %s %s", release.pk, release.endpoint.name, kind, message)
    return event


def change_state(
    release: Release,
    to_state: str,
    message: str,
    *,
    actor=None,
    kind: str = "state",
    data: dict | None = None,
    step_key: str | None = None,
    **fields,
) -> None:
    """Move a locked release to a new state, set `fields` on it, and record the transition as one event.

    `kind` names what caused the change, such as "pause" for a person's action
    or "analysis" for a failed analysis. Plain controller progress is "state".
    """
    from_state = release.state
    release.state = to_state
    for name, value in fields.items():
        setattr(release, name, value)
    release.save(update_fields=["state", "updated_at", *fields])

    record_event(
        release,
        kind,
        message,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        data=data,
        step_key=step_key,
    )
