"""Write routes of the deployments API reject top-level fields they do not accept."""

import pytest
from rest_framework.test import APIClient

from deployments.models import Release
from tests.conftest import add_role

pytestmark = pytest.mark.django_db

RELEASES = "/api/v1/releases/"


def _release_body(**extra):
    return {"endpoint": "churn", "environment": "development", "model": "churn", "version": 2, **extra}


@pytest.fixture
def admin_client(django_user_model):
    admin = django_user_model.objects.create_user(username="ada", password="a-long-test-password-1")
    client = APIClient()
    client.force_authenticate(add_role(admin, "admin"))
    return client


def test_create_release_unknown_field_returns_400(api_client, environment, model_version):
    response = api_client.post(RELEASES, _release_body(colour="blue"), format="json")
    assert response.status_code == 400


def test_create_release_unknown_field_is_named(api_client, environment, model_version):
    response = api_client.post(RELEASES, _release_body(stratgy="canary"), format="json")
    assert response.json()["error"]["field"] == "stratgy"


def test_create_release_unknown_field_lists_accepted(api_client, environment, model_version):
    response = api_client.post(RELEASES, _release_body(stratgy="canary"), format="json")
    assert response.json()["error"]["message"] == (
        "stratgy: Unknown field; check its spelling. "
        "This request accepts only endpoint, environment, model, version, alias, model_uri, strategy, plan, analysis."
    )


def test_create_release_unknown_field_stores_nothing(api_client, environment, model_version):
    api_client.post(RELEASES, _release_body(colour="blue"), format="json")
    assert not Release.objects.exists()


def test_create_release_every_unknown_field_listed(api_client, environment, model_version):
    response = api_client.post(RELEASES, _release_body(colour="blue", stratgy="canary"), format="json")
    assert sorted(response.json()["error"]["fields"]) == ["colour", "stratgy"]


def test_release_action_unknown_field_names_it(api_client, make_release):
    release = make_release()
    response = api_client.post(f"{RELEASES}{release.pk}/pause/", {"reasn": "typo"}, format="json")
    assert response.json()["error"]["field"] == "reasn"


def test_release_action_unknown_field_keeps_state(api_client, make_release):
    release = make_release()
    api_client.post(f"{RELEASES}{release.pk}/pause/", {"reasn": "typo"}, format="json")
    release.refresh_from_db()
    assert release.state == Release.State.PROGRESSING


def test_release_action_empty_body_accepted(api_client, make_release):
    release = make_release()
    response = api_client.post(f"{RELEASES}{release.pk}/pause/", format="json")
    assert response.status_code == 200


def test_create_endpoint_unknown_field_names_it(api_client, environment):
    body = {"name": "scores", "environment": "development", "sticky": "x-user"}
    response = api_client.post("/api/v1/endpoints/", body, format="json")
    assert response.json()["error"]["field"] == "sticky"


def test_create_endpoint_read_only_field_rejected(api_client, environment):
    body = {"name": "scores", "environment": "development", "traffic": []}
    response = api_client.post("/api/v1/endpoints/", body, format="json")
    assert response.json()["error"]["field"] == "traffic"


def test_create_environment_unknown_field_names_it(admin_client):
    response = admin_client.post("/api/v1/environments/", {"name": "qa", "needs_approval": True}, format="json")
    assert response.json()["error"]["field"] == "needs_approval"


def test_create_environment_form_post_accepts_csrf_token(admin_client):
    response = admin_client.post("/api/v1/environments/", {"name": "qa", "csrfmiddlewaretoken": "x"})
    assert response.status_code == 201
