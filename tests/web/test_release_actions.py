"""Release actions from the page: the same service functions as the API, errors next to the field."""

import pytest

from deployments.models import Release, RouteBackend
from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_approve_from_page_approves(world):
    release = world["releases"]["production"]
    client_for(world["olga"]).post(f"/releases/{release.pk}/approve/", {"comment": "ok"}, **HTMX)
    assert Release.objects.get(pk=release.pk).state == "approved"


def test_approve_from_page_triggers_live_reload(world):
    release = world["releases"]["production"]
    response = client_for(world["olga"]).post(f"/releases/{release.pk}/approve/", {"comment": "ok"}, **HTMX)
    assert response["HX-Trigger"] == "release-changed"


def test_reject_without_reason_errors_next_to_field(world):
    release = world["releases"]["production"]
    response = client_for(world["olga"]).post(f"/releases/{release.pk}/reject/", {"reason": ""}, **HTMX)
    assert response.status_code == 422
    assert 'id="reject-error"' in response.content.decode()


def test_reject_without_reason_keeps_release_waiting(world):
    release = world["releases"]["production"]
    client_for(world["olga"]).post(f"/releases/{release.pk}/reject/", {"reason": ""}, **HTMX)
    assert Release.objects.get(pk=release.pk).state == "awaiting_approval"


def test_approve_twice_reports_conflict(world):
    release = world["releases"]["production"]
    client = client_for(world["olga"])
    client.post(f"/releases/{release.pk}/approve/", {}, **HTMX)
    response = client.post(f"/releases/{release.pk}/approve/", {}, **HTMX)
    assert response.status_code == 409


def test_rollback_from_page_restores_stable_traffic(world):
    release = world["releases"]["development"]
    client_for(world["dana"]).post(f"/releases/{release.pk}/rollback/", {"reason": "bad metrics"})
    backend = RouteBackend.objects.get(endpoint=release.endpoint, weight=100)
    assert backend.server.version == world["versions"][0]


def test_rollback_without_htmx_redirects_to_release(world):
    release = world["releases"]["development"]
    response = client_for(world["dana"]).post(f"/releases/{release.pk}/rollback/", {"reason": "bad metrics"})
    assert response["Location"] == f"/releases/{release.pk}/"


def test_rollback_records_reason_in_timeline(world):
    release = world["releases"]["development"]
    client_for(world["dana"]).post(f"/releases/{release.pk}/rollback/", {"reason": "bad metrics"})
    assert release.events.filter(to_state="rolled_back", message__contains="bad metrics").exists()


def test_pause_from_page_pauses(world):
    release = world["releases"]["fraud"]
    client_for(world["olga"]).post(f"/releases/{release.pk}/pause/", {"reason": "look at logs"}, **HTMX)
    assert Release.objects.get(pk=release.pk).state == "paused"


def test_resume_offered_once_paused(world):
    release = world["releases"]["fraud"]
    response = client_for(world["olga"]).post(f"/releases/{release.pk}/pause/", {}, **HTMX)
    assert 'data-action="resume"' in response.content.decode()


def test_action_in_wrong_state_reports_conflict(world):
    release = world["releases"]["production"]
    response = client_for(world["olga"]).post(f"/releases/{release.pk}/pause/", {}, **HTMX)
    assert response.status_code == 409


def test_restore_older_version_creates_release(world):
    endpoint = world["endpoints"]["development"]
    v1, v2 = world["versions"]
    response = client_for(world["dana"]).post(f"/endpoints/{endpoint.name}/restore/", {"version": v2.pk, "reason": "again"})
    release = Release.objects.filter(endpoint=endpoint).latest("created_at")
    assert response["Location"] == f"/releases/{release.pk}/"
    assert release.version == v2


def test_restore_unknown_version_not_found(world):
    endpoint = world["endpoints"]["development"]
    response = client_for(world["dana"]).post(f"/endpoints/{endpoint.name}/restore/", {"version": "nope"})
    assert response.status_code == 404


def test_abort_without_reason_keeps_page_message(world):
    release = world["releases"]["fraud"]
    response = client_for(world["fran"]).post(f"/releases/{release.pk}/abort/", {"reason": ""}, **HTMX)
    assert "Give a reason to abort." in response.content.decode()


def test_requester_sees_withdraw_on_waiting_release(world):
    release = world["releases"]["production"]
    response = client_for(world["dana"]).get(f"/releases/{release.pk}/actions/")
    assert '<button type="submit" class="danger" data-action="abort">Withdraw</button>' in response.content.decode()


def test_other_data_scientist_sees_no_withdraw(world):
    release = world["releases"]["production"]
    response = client_for(world["dave"]).get(f"/releases/{release.pk}/actions/")
    assert 'data-action="abort"' not in response.content.decode()


def test_requester_withdraws_from_page(world):
    release = world["releases"]["production"]
    client_for(world["dana"]).post(f"/releases/{release.pk}/abort/", {"reason": "wrong version"}, **HTMX)
    assert Release.objects.get(pk=release.pk).state == "aborted"


def test_withdrawn_release_offers_no_retry(world):
    release = world["releases"]["production"]
    client = client_for(world["olga"])
    client.post(f"/releases/{release.pk}/abort/", {"reason": "wrong version"}, **HTMX)
    response = client.get(f"/releases/{release.pk}/actions/")
    assert 'data-action="retry"' not in response.content.decode()


def test_htmx_conflict_shows_message_in_panel(world):
    release = world["releases"]["development"]
    response = client_for(world["dana"]).post(f"/releases/{release.pk}/resume/", {}, **HTMX)
    assert f"Release {release.pk} is promoted, so it cannot be resumed." in response.content.decode()


def test_htmx_conflict_keeps_status_409(world):
    release = world["releases"]["development"]
    response = client_for(world["dana"]).post(f"/releases/{release.pk}/resume/", {}, **HTMX)
    assert response.status_code == 409


def test_restore_without_reason_reports_message(world):
    endpoint, (v1, _) = world["endpoints"]["development"], world["versions"]
    response = client_for(world["dana"]).post(f"/endpoints/{endpoint.name}/restore/", {"version": v1.pk}, follow=True)
    assert "Give a reason to roll back to v1." in response.content.decode()
