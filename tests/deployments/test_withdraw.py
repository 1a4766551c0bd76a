"""Aborting a release before it starts: awaiting approval, or approved without a candidate server."""

import pytest
from rest_framework.test import APIClient

from audit.models import AuditEntry
from deployments.models import Release, RouteRevision
from deployments.services import releases
from mlops_portal.errors import Conflict
from tests.conftest import add_role

pytestmark = pytest.mark.django_db

URL = "/api/v1/releases/"
REASON = {"reason": "wrong version"}


@pytest.fixture
def waiting(api_client, production, model_version):
    """A release to production that Dana (the `user` fixture) requested and that awaits approval."""
    body = {"endpoint": "churn", "environment": "production", "model": "churn", "version": 2}
    response = api_client.post(URL, body, format="json")
    return Release.objects.get(pk=response.json()["id"])


def _client_for(django_user_model, name: str, role: str) -> APIClient:
    person = django_user_model.objects.create_user(username=name, password=None)
    client = APIClient()
    client.force_authenticate(add_role(person, role))
    return client


def test_requester_withdraws_waiting_release(api_client, waiting):
    response = api_client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    assert response.json()["state"] == "aborted"


def test_withdraw_changes_no_traffic(api_client, waiting):
    revisions = RouteRevision.objects.count()
    api_client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    assert RouteRevision.objects.count() == revisions


def test_withdraw_records_event(api_client, user, waiting):
    api_client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    event = waiting.events.get(kind="abort")
    assert (event.actor, event.from_state, event.data) == (user, "awaiting_approval", {"reason": "wrong version", "withdrawn": True})


def test_withdraw_writes_audit_entry(api_client, user, waiting):
    api_client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    assert AuditEntry.objects.filter(action="release.abort", actor=user, object_id=str(waiting.pk)).count() == 1


def test_withdraw_frees_endpoint(api_client, waiting):
    api_client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    body = {"endpoint": "churn", "model": "churn", "version": 2}
    assert api_client.post(URL, body, format="json").status_code == 201


def test_withdraw_by_other_data_scientist_forbidden(django_user_model, waiting):
    client = _client_for(django_user_model, "dave", "data scientist")
    response = client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    assert response.status_code == 403


def test_withdraw_by_ops_lead_allowed(django_user_model, waiting):
    client = _client_for(django_user_model, "olga", "ops lead")
    response = client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    assert response.status_code == 200


def test_requester_abort_after_start_forbidden(api_client, waiting):
    Release.objects.filter(pk=waiting.pk).update(state=Release.State.BUILDING)
    response = api_client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    assert response.status_code == 403


def test_requester_withdraws_approved_unstarted(api_client, waiting):
    Release.objects.filter(pk=waiting.pk).update(state=Release.State.APPROVED)
    response = api_client.post(f"{URL}{waiting.pk}/abort/", REASON, format="json")
    assert response.json()["state"] == "aborted"


def test_withdraw_without_reason_returns_400(api_client, waiting):
    response = api_client.post(f"{URL}{waiting.pk}/abort/", {}, format="json")
    assert response.json()["error"]["field"] == "reason"


def test_retry_after_withdraw_conflicts(user, waiting):
    releases.abort(waiting.pk, actor=user, reason="wrong version")
    with pytest.raises(Conflict):
        releases.retry(waiting.pk, actor=user)


def test_retry_after_withdraw_keeps_state(user, waiting):
    releases.abort(waiting.pk, actor=user, reason="wrong version")
    with pytest.raises(Conflict):
        releases.retry(waiting.pk, actor=user)
    waiting.refresh_from_db()
    assert waiting.state == "aborted"
