"""The actions a person can take on a release, when the page offers them, and the service each calls.

The page shows an action only when the release's state allows it and the
user's role does (mlops_portal.access). The service function still checks
the state under a row lock and raises Conflict when the release moved on
in between, so this table decides what to show, never what is allowed.
"""

from __future__ import annotations

import dataclasses

from deployments.models import Release
from deployments.services import approvals, releases
from mlops_portal import access
from mlops_portal.access import Capability

State = Release.State


@dataclasses.dataclass(frozen=True)
class ReleaseAction:
    name: str  # URL segment, such as "promote-fully"
    label: str
    capability: Capability
    states: tuple[str, ...]
    function_name: str  # in deployments.services.releases or .approvals
    text_field: str = "reason"  # the free-text argument: "reason" or "comment"
    text_required: bool = False
    style: str = ""  # CSS class of the button: "", "secondary" or "danger"

    @property
    def verb(self) -> str:
        """Return the label as a verb phrase for help text, such as "promote to the next step"."""
        return {"Roll back": "roll back"}.get(self.label, self.label.lower())

    def applies_to(self, release: Release) -> bool:
        if release.state not in self.states:
            return False
        if self.name == "retry" and release.state == State.ABORTED:
            return not releases.was_withdrawn_before_approval(release)
        return not (self.name == "rollback" and release.stable_version_id is None)

    def run(self, release_id: int, *, actor, text: str) -> Release:
        module = approvals if self.function_name in ("approve", "reject") else releases
        service = getattr(module, self.function_name)
        return service(release_id, actor=actor, **{self.text_field: text})


# The states mirror the release engine's checks in deployments.services.releases.
ACTIONS = [
    ReleaseAction("approve", "Approve", Capability.APPROVE, (State.AWAITING_APPROVAL,), "approve", text_field="comment"),
    ReleaseAction("reject", "Reject", Capability.APPROVE, (State.AWAITING_APPROVAL,), "reject", text_required=True, style="danger"),
    ReleaseAction("pause", "Pause", Capability.OPERATE, (State.PROGRESSING,), "pause", style="secondary"),
    ReleaseAction("resume", "Resume", Capability.OPERATE, (State.PAUSED,), "resume"),
    ReleaseAction("promote", "Promote to the next step", Capability.OPERATE, (State.PROGRESSING, State.PAUSED), "promote"),
    ReleaseAction("promote-fully", "Promote fully", Capability.OPERATE, (State.PROGRESSING, State.PAUSED), "promote_fully"),
    ReleaseAction(
        "abort", "Abort", Capability.ABORT, (State.AWAITING_APPROVAL, *Release.ACTIVE_STATES), "abort", text_required=True, style="danger"
    ),
    ReleaseAction("rollback", "Roll back", Capability.OPERATE, (State.PROMOTED,), "rollback", text_required=True, style="danger"),
    ReleaseAction("retry", "Retry", Capability.OPERATE, (State.FAILED, State.ABORTED), "retry"),
]
ACTIONS_BY_NAME = {action.name: action for action in ACTIONS}


def allowed(user, release: Release, action: ReleaseAction) -> bool:
    """Return whether the user's role allows `action` on `release` (a release they can see)."""
    if action.capability == Capability.APPROVE:
        return access.can_approve(user, release) and not release.approvals.filter(approver_id=user.pk).exists()
    if action.capability == Capability.ABORT:
        return access.can_abort(user, release)
    return access.can_operate_in(user, release.endpoint.environment)


def available_actions(user, release: Release) -> list[ReleaseAction]:
    return [action for action in ACTIONS if action.applies_to(release) and allowed(user, release, action)]
