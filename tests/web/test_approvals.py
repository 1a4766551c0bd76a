"""deployments.services.approvals against PostgreSQL: counting approvals, rejections and the rules."""

import pytest

from audit.models import AuditEntry
from deployments.models import Approval, Release
from deployments.services import approvals
from mlops_portal.errors import Conflict, Forbidden, InvalidInput

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(world):
    return world["releases"]["production"]


def test_approve_moves_release_to_approved(world, waiting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        approvals.approve(waiting.pk, actor=world["olga"], comment="looks good")
    assert Release.objects.get(pk=waiting.pk).state == "approved"


def test_approve_schedules_controller(world, waiting, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        approvals.approve(waiting.pk, actor=world["olga"])
    assert len(callbacks) == 1


def test_approve_records_who_and_comment(world, waiting):
    approvals.approve(waiting.pk, actor=world["olga"], comment="looks good")
    approval = Approval.objects.get(release=waiting)
    assert (approval.approver, approval.decision, approval.comment) == (world["olga"], "approved", "looks good")


def test_approve_records_event_and_audit_entry(world, waiting):
    approvals.approve(waiting.pk, actor=world["olga"], comment="looks good")
    assert waiting.events.filter(kind="approval", actor=world["olga"]).exists()
    assert AuditEntry.objects.filter(action="release.approval", actor=world["olga"]).exists()


def test_two_approvals_needed_waits_after_first(world, waiting):
    waiting.endpoint.environment.approvals_required = 2
    waiting.endpoint.environment.save()
    approvals.approve(waiting.pk, actor=world["olga"])
    assert Release.objects.get(pk=waiting.pk).state == "awaiting_approval"


def test_two_approvals_needed_starts_after_second(world, waiting):
    waiting.endpoint.environment.approvals_required = 2
    waiting.endpoint.environment.save()
    approvals.approve(waiting.pk, actor=world["olga"])
    approvals.approve(waiting.pk, actor=world["oscar"])
    assert Release.objects.get(pk=waiting.pk).state == "approved"


def test_same_approver_twice_conflicts(world, waiting):
    waiting.endpoint.environment.approvals_required = 2
    waiting.endpoint.environment.save()
    approvals.approve(waiting.pk, actor=world["olga"])
    with pytest.raises(Conflict, match="already decided"):
        approvals.approve(waiting.pk, actor=world["olga"])


def test_requester_cannot_approve_own_release(world, waiting):
    with pytest.raises(Forbidden, match="You requested release"):
        approvals.approve(waiting.pk, actor=world["dana"])


def test_approve_release_not_waiting_conflicts(world):
    with pytest.raises(Conflict) as raised:
        approvals.approve(world["releases"]["development"].pk, actor=world["olga"])
    assert raised.value.details == {"state": "promoted"}


def test_reject_needs_reason(world, waiting):
    with pytest.raises(InvalidInput) as raised:
        approvals.reject(waiting.pk, actor=world["olga"], reason="  ")
    assert raised.value.field == "reason"


def test_reject_ends_release(world, waiting):
    approvals.reject(waiting.pk, actor=world["olga"], reason="no load test")
    release = Release.objects.get(pk=waiting.pk)
    assert release.state == "rejected"
    assert release.failure_reason == "Rejected by olga: no load test"


def test_reject_records_reason(world, waiting):
    approvals.reject(waiting.pk, actor=world["olga"], reason="no load test")
    assert Approval.objects.get(release=waiting).comment == "no load test"


def test_failed_approval_leaves_nothing_stored(world, waiting):
    with pytest.raises(Forbidden):
        approvals.approve(waiting.pk, actor=world["dana"])
    assert not Approval.objects.filter(release=waiting).exists()


def test_overlong_comment_rejected(world, waiting):
    with pytest.raises(InvalidInput) as raised:
        approvals.approve(waiting.pk, actor=world["olga"], comment="x" * 2001)
    assert raised.value.field == "comment"
