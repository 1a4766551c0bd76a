"""Model names with '/', '%', quotes, inner spaces and non-Latin letters, through real URLs."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest

from registry.models import RegisteredModel
from tests.registry.conftest import upload

pytestmark = pytest.mark.django_db

SPECIAL_NAMES = ["fraud/detector", "50% off", "it's \"quoted\"", "churn  model v2", "модель-😀", "a/b%2Fc"]


@pytest.mark.parametrize("name", SPECIAL_NAMES)
def test_create_model_keeps_name(api_client, name):
    response = api_client.post("/api/v1/models/", {"name": name}, format="json")
    assert response.json()["name"] == name


@pytest.mark.parametrize("name", SPECIAL_NAMES)
def test_model_by_id_returns_name(api_client, name):
    model_id = api_client.post("/api/v1/models/", {"name": name}, format="json").json()["id"]
    assert api_client.get(f"/api/v1/models/{model_id}/").json()["name"] == name


@pytest.mark.parametrize("name", SPECIAL_NAMES)
def test_name_lookup_returns_model(api_client, name):
    api_client.post("/api/v1/models/", {"name": name}, format="json")
    response = api_client.get("/api/v1/models/", {"name": name})
    assert [model["name"] for model in response.json()["results"]] == [name]


@pytest.mark.parametrize("name", ["50% off", "it's \"quoted\"", "churn  model v2", "модель-😀"])
def test_name_in_path_finds_model(api_client, name):
    api_client.post("/api/v1/models/", {"name": name}, format="json")
    response = api_client.get(f"/api/v1/models/{quote(name, safe='')}/")
    assert response.json()["name"] == name


def test_upload_by_encoded_name_creates_model(api_client, demo_model_zip):
    response = upload(api_client, quote("50% off 'promo'", safe=""), demo_model_zip.read_bytes())
    assert response.json()["model"] == "50% off 'promo'"


def test_upload_by_id_for_slash_name(api_client, demo_model_zip):
    model_id = api_client.post("/api/v1/models/", {"name": "team/fraud"}, format="json").json()["id"]
    response = upload(api_client, str(model_id), demo_model_zip.read_bytes())
    assert response.json()["uri"] == "models:/team/fraud/1"


def test_digit_name_is_reached_by_id(api_client):
    model_id = api_client.post("/api/v1/models/", {"name": "2024"}, format="json").json()["id"]
    assert api_client.get(f"/api/v1/models/{model_id}/").json()["name"] == "2024"


def test_duplicate_name_differing_in_case_returns_409(api_client):
    api_client.post("/api/v1/models/", {"name": "Fraud Detector"}, format="json")
    response = api_client.post("/api/v1/models/", {"name": "  fraud detector "}, format="json")
    assert response.status_code == 409


def test_duplicate_name_stores_one_model(api_client):
    api_client.post("/api/v1/models/", {"name": "Fraud Detector"}, format="json")
    api_client.post("/api/v1/models/", {"name": "FRAUD DETECTOR"}, format="json")
    assert RegisteredModel.objects.count() == 1


def test_name_with_control_character_names_field(api_client):
    response = api_client.post("/api/v1/models/", {"name": "bad\x07name"}, format="json")
    assert response.json()["error"]["field"] == "name"


def test_name_of_257_characters_returns_400(api_client):
    response = api_client.post("/api/v1/models/", {"name": "x" * 257}, format="json")
    assert response.status_code == 400


def test_search_finds_name_with_percent(api_client):
    api_client.post("/api/v1/models/", {"name": "50% off"}, format="json")
    api_client.post("/api/v1/models/", {"name": "500 off"}, format="json")
    response = api_client.get("/api/v1/models/", {"q": "0%"})
    assert [model["name"] for model in response.json()["results"]] == ["50% off"]


def test_search_ignores_letter_case(api_client):
    api_client.post("/api/v1/models/", {"name": "Team/Fraud"}, format="json")
    response = api_client.get("/api/v1/models/", {"q": "team/f"})
    assert [model["name"] for model in response.json()["results"]] == ["Team/Fraud"]


def test_uri_with_slash_name_resolves(api_client, registered):
    registered("team/fraud")
    response = api_client.get("/api/v1/compare/", {"base": "models:/team/fraud/1", "candidate": "models:/team/fraud/1"})
    assert response.json()["compatible"] is True


# Through a real HTTP server: the client encodes, the server decodes, links round-trip.


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", SPECIAL_NAMES)
def test_live_list_page_link_opens_model(live_server, client, user, name):
    import httpx

    RegisteredModel.objects.create(name=name)
    with httpx.Client(base_url=live_server.url) as browser:
        client.force_login(user)
        browser.cookies.set("sessionid", client.cookies["sessionid"].value)
        listing = browser.get("/models/", params={"q": name})
        link = re.search(r'<td><a href="([^"]+)">', listing.text).group(1)
        page = browser.get(link)
    assert f"<h1>Model {_escaped(name)}</h1>" in page.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", ["50% off", "it's \"quoted\"", "churn  model v2", "модель-😀", "a%2Fb"])
def test_live_name_path_returns_model(live_api, name):
    live_api.post("/api/v1/models/", json={"name": name})
    response = live_api.get(f"/api/v1/models/{quote(name, safe='')}/")
    assert response.json()["name"] == name


@pytest.mark.django_db(transaction=True)
def test_live_slash_name_by_id_returns_model(live_api):
    model_id = live_api.post("/api/v1/models/", json={"name": "team/fraud detector"}).json()["id"]
    assert live_api.get(f"/api/v1/models/{model_id}/").json()["name"] == "team/fraud detector"


@pytest.mark.django_db(transaction=True)
def test_live_name_query_finds_slash_name(live_api):
    live_api.post("/api/v1/models/", json={"name": "team/fraud detector"})
    response = live_api.get("/api/v1/models/", params={"name": "Team/Fraud Detector"})
    assert response.json()["results"][0]["name"] == "team/fraud detector"


def _escaped(name: str) -> str:
    from django.utils.html import escape

    return escape(name)
