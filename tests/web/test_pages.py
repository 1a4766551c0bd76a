"""Pages render for each role and show what the role may do."""

import pytest
from django.urls import reverse

from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def test_dashboard_lists_approval_waiting_for_ops_lead(world):
    response = client_for(world["olga"]).get(reverse("dashboard"))
    assert f"#{world['releases']['production'].pk}</a>" in response.content.decode().split("Releases in progress")[0]


def test_dashboard_hides_own_release_from_waiting_list(world):
    ada_requested = world["releases"]["production"]
    ada_requested.requested_by = world["ada"]
    ada_requested.save()
    response = client_for(world["ada"]).get(reverse("dashboard"))
    assert "Nothing waits for you." in response.content.decode()


def test_dashboard_partial_for_htmx(world):
    response = client_for(world["vic"]).get(reverse("dashboard"), **HTMX)
    assert response.content.decode().lstrip().startswith('<div id="dashboard-panels"')


def test_dashboard_shows_endpoint_health(world):
    response = client_for(world["vic"]).get(reverse("dashboard"))
    assert "health-healthy" in response.content.decode()


def test_endpoint_list_hides_restricted_environment(world):
    response = client_for(world["dana"]).get(reverse("endpoint-list"))
    assert "churn-fraud" not in response.content.decode()


def test_endpoint_list_shows_restricted_environment_to_member(world):
    response = client_for(world["fran"]).get(reverse("endpoint-list"))
    assert "churn-fraud" in response.content.decode()


def test_endpoint_detail_offers_rollback_to_data_scientist_in_development(world):
    world["releases"]["development"].version  # v2 was promoted over v1
    from deployments.services import routing

    endpoint = world["endpoints"]["development"]
    v2_server = endpoint.servers.create(version=world["versions"][1], runtime="local", state="ready")
    routing.set_traffic(endpoint, {v2_server: 100}, roles={})
    response = client_for(world["dana"]).get(reverse("endpoint-detail", args=[endpoint.name]))
    assert "Roll back to v1" in response.content.decode()


def test_endpoint_detail_hides_rollback_from_viewer(world):
    endpoint = world["endpoints"]["development"]
    response = client_for(world["vic"]).get(reverse("endpoint-detail", args=[endpoint.name]))
    assert "Roll back to v" not in response.content.decode()


def test_release_detail_shows_approvers_while_waiting(world):
    release = world["releases"]["production"]
    response = client_for(world["vic"]).get(reverse("release-detail", args=[release.pk]))
    assert "Can approve: ada, olga, oscar" in response.content.decode()


def test_release_detail_offers_approve_to_ops_lead(world):
    release = world["releases"]["production"]
    response = client_for(world["olga"]).get(reverse("release-detail", args=[release.pk]))
    assert 'data-action="approve"' in response.content.decode()


def test_release_detail_hides_approve_from_requester(world):
    release = world["releases"]["production"]
    response = client_for(world["dana"]).get(reverse("release-detail", args=[release.pk]))
    assert 'data-action="approve"' not in response.content.decode()


def test_release_detail_offers_rollback_to_data_scientist_in_development(world):
    release = world["releases"]["development"]
    response = client_for(world["dave"]).get(reverse("release-detail", args=[release.pk]))
    assert 'data-action="rollback"' in response.content.decode()


def test_release_detail_hides_actions_from_viewer(world):
    release = world["releases"]["development"]
    response = client_for(world["vic"]).get(reverse("release-detail", args=[release.pk]))
    assert "data-action=" not in response.content.decode()


def test_release_status_stops_polling_when_final(world):
    release = world["releases"]["development"]
    response = client_for(world["vic"]).get(reverse("release-status", args=[release.pk]), **HTMX)
    assert response.status_code == 286


def test_release_status_polls_while_waiting(world):
    release = world["releases"]["production"]
    response = client_for(world["vic"]).get(reverse("release-status", args=[release.pk]), **HTMX)
    assert response.status_code == 200


def test_release_status_triggers_actions_reload_on_state_change(world):
    release = world["releases"]["production"]
    url = reverse("release-status", args=[release.pk]) + "?state=draft"
    response = client_for(world["vic"]).get(url, **HTMX)
    assert response["HX-Trigger"] == "release-state-changed"


def test_release_metrics_returns_json(world):
    release = world["releases"]["fraud"]
    response = client_for(world["olga"]).get(reverse("release-metrics", args=[release.pk]))
    assert response.json()["final"] is False


def test_release_list_filters_by_state(world):
    response = client_for(world["olga"]).get(reverse("release-list") + "?state=promoted")
    assert f"#{world['releases']['production'].pk}<" not in response.content.decode()


def test_no_role_user_sees_explanation(world):
    response = client_for(world["nora"]).get(reverse("dashboard"))
    assert "has no role yet" in response.content.decode()
