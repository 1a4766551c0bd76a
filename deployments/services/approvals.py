"""Approving and rejecting releases that wait for approval; the API and the UI both call these.

An environment with `requires_approval` sends each new release to
`awaiting_approval`. It moves to `approved`, and its controller starts, once
`approvals_required` different people have approved it. One rejection ends it.
The requester can never decide on their own release. Callers check the
approving role through mlops_portal.access.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from deployments.models import Approval, Release
from deployments.services.events import change_state, record_event
from deployments.services.releases import get_release_for_update, schedule_controller
from mlops_portal.errors import Conflict, Forbidden, InvalidInput

logger = logging.getLogger("deployments.approvals")

State = Release.State
MAX_TEXT_LENGTH = 2000


def approve(release_id: int, *, actor, comment: str = "") -> Release:
    """Record `actor`'s approval; the last approval needed moves the release to approved and starts it."""
    comment = _clean(comment, "comment")

    with transaction.atomic():
        release = get_release_for_update(release_id)
        _check_can_decide(release, actor)

        Approval.objects.create(release=release, approver=actor, decision=Approval.Decision.APPROVED, comment=comment)
        approvers = list(
            release.approvals.filter(decision=Approval.Decision.APPROVED).select_related("approver").order_by("created_at", "id")
        )
        required = required_approvals(release)
        suffix = f": {comment}" if comment else ""
        record_event(
            release,
            "approval",
            f"{actor} approved ({len(approvers)} of {required}){suffix}",
            actor=actor,
            data={"comment": comment, "approvals": len(approvers), "required": required},
        )

        if len(approvers) >= required:
            names = ", ".join(str(approval.approver) for approval in approvers)
            change_state(release, State.APPROVED, f"Approved by {names}", actor=actor)
            schedule_controller(release)

    logger.info("Release %s: approved by user %s (%d of %d)", release.pk, actor.pk, len(approvers), required)
    return release


def reject(release_id: int, *, actor, reason: str) -> Release:
    """Record `actor`'s rejection with its reason and end the release."""
    reason = _clean(reason, "reason")
    if not reason:
        raise InvalidInput("Give a reason for the rejection, so the requester knows what to change.", field="reason")

    with transaction.atomic():
        release = get_release_for_update(release_id)
        _check_can_decide(release, actor)

        Approval.objects.create(release=release, approver=actor, decision=Approval.Decision.REJECTED, comment=reason)
        change_state(
            release,
            State.REJECTED,
            f"{actor} rejected the release: {reason}",
            actor=actor,
            failure_reason=f"Rejected by {actor}: {reason}",
            finished_at=timezone.now(),
        )

    logger.info("Release %s: rejected by user %s", release.pk, actor.pk)
    return release


def required_approvals(release: Release) -> int:
    return max(1, release.endpoint.environment.approvals_required)


def _check_can_decide(release: Release, actor) -> None:
    if release.state != State.AWAITING_APPROVAL:
        raise Conflict(
            f"Release {release.pk} is {release.get_state_display().lower()}, not awaiting approval.",
            details={"state": release.state},
        )
    if actor is None or not actor.is_authenticated:
        raise Forbidden("A release is approved or rejected by a person, not by the system.")
    if release.requested_by_id == actor.pk:
        raise Forbidden(f"You requested release {release.pk}, so another ops lead must approve or reject it.")
    if release.approvals.filter(approver=actor).exists():
        raise Conflict(f"You already decided on release {release.pk}.", details={"state": release.state})


def _clean(text: str, field: str) -> str:
    text = (text or "").strip()
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput(f"The {field} has {len(text)} characters; at most {MAX_TEXT_LENGTH} are allowed.", field=field)
    return text
