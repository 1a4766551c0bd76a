"""Missing pages and API paths: the portal's 404 page, the API's JSON 404, and the API root."""

import pytest

from tests.web.conftest import client_for

pytestmark = pytest.mark.django_db


def test_api_root_lists_releases(world):
    response = client_for(world["dana"]).get("/api/v1/")
    assert response.json()["releases"] == "http://testserver/api/v1/releases/"


def test_api_root_lists_collections(world):
    response = client_for(world["dana"]).get("/api/v1/")
    assert sorted(response.json()) == ["builds", "docs", "endpoints", "environments", "models", "releases", "schema"]


def test_api_unknown_action_returns_json_404(world):
    release = world["releases"]["development"]
    response = client_for(world["dana"]).get(f"/api/v1/releases/{release.pk}/frobnicate/")
    assert response.json()["error"]["code"] == "not_found"


def test_api_unknown_action_status_404(world):
    release = world["releases"]["development"]
    response = client_for(world["dana"]).post(f"/api/v1/releases/{release.pk}/frobnicate/", {}, content_type="application/json")
    assert response.status_code == 404


def test_api_missing_slash_suggests_it(world):
    response = client_for(world["dana"]).get("/api/v1/releases")
    assert response.json()["error"]["message"] == "No API route matches /api/v1/releases; add a trailing slash: /api/v1/releases/."


def test_api_unknown_path_anonymous_401(db):
    from django.test import Client

    assert Client().get("/api/v1/nothing/").status_code == 401


def test_model_page_missing_uses_portal_template(world):
    response = client_for(world["dana"]).get("/models/999/")
    assert "Nothing was found at /models/999/." in response.content.decode()


def test_model_page_missing_status_404(world):
    response = client_for(world["dana"]).get("/models/999/")
    assert response.status_code == 404


def test_unknown_page_uses_portal_template(world, settings):
    settings.DEBUG = False
    response = client_for(world["dana"]).get("/no-such-page/")
    assert "Nothing was found at /no-such-page/." in response.content.decode()


def test_model_page_missing_with_debug_uses_portal_template(world, settings):
    settings.DEBUG = True
    response = client_for(world["dana"]).get("/models/999/")
    assert "Nothing was found at /models/999/." in response.content.decode()


def test_api_unknown_path_with_debug_returns_json(world, settings):
    settings.DEBUG = True
    response = client_for(world["dana"]).get("/api/v1/releases/1/frobnicate/")
    assert response["Content-Type"] == "application/json"
