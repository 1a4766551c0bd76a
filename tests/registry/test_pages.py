"""Model list, model detail, version detail and compare pages."""

from __future__ import annotations

import pytest

from deployments.models import Endpoint, Environment, ModelServer
from registry.services import aliases, tags

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(client, user):
    client.force_login(user)
    return client


def test_list_page_search_finds_model(browser, registered):
    registered("fraud/detector")
    registered("churn")
    response = browser.get("/models/", {"q": "fraud/"})
    assert [model.name for model in response.context["models"]] == ["fraud/detector"]


def test_list_page_filters_by_alias(browser, registered, user):
    version = registered("fraud")
    registered("churn")
    aliases.set_alias(version.model, "champion", 1, actor=user)
    response = browser.get("/models/", {"alias": "champion"})
    assert [model.name for model in response.context["models"]] == ["fraud"]


def test_list_page_bad_status_shows_error(browser):
    assert "status" in browser.get("/models/", {"status": "done"}).context["error"]


def test_list_page_bad_cursor_shows_error(browser):
    assert "cursor" in browser.get("/models/", {"cursor": "!!"}).context["error"]


def test_model_page_lists_alias_with_mover(browser, registered, user):
    version = registered("fraud")
    aliases.set_alias(version.model, "champion", 1, actor=user)
    assert "by dana" in browser.get(f"/models/{version.model_id}/").content.decode()


def test_model_page_lists_tag(browser, registered, user):
    version = registered("fraud")
    tags.set_tag(version.model, "team", "risk", actor=user)
    assert "<code>team</code> risk" in browser.get(f"/models/{version.model_id}/").content.decode()


def test_version_page_shows_signature_column(browser, registered):
    version = registered("fraud")
    page = browser.get(f"/models/{version.model_id}/versions/1/").content.decode()
    assert "<tr><td>mean radius</td><td>double</td><td>yes</td></tr>" in page


def test_version_page_shows_serving_endpoint(browser, registered):
    version = registered("fraud")
    environment, _ = Environment.objects.get_or_create(name="development")
    endpoint = Endpoint.objects.create(name="fraud-live", environment=environment)
    ModelServer.objects.create(endpoint=endpoint, version=version, runtime="local", state="ready")
    assert 'href="/endpoints/fraud-live/"' in browser.get(f"/models/{version.model_id}/versions/1/").content.decode()


def test_version_page_links_download(browser, registered):
    version = registered("fraud")
    page = browser.get(f"/models/{version.model_id}/versions/1/").content.decode()
    assert f'href="/api/v1/models/{version.model_id}/versions/1/artifact/"' in page


def test_version_page_lists_mlmodel_file(browser, registered):
    version = registered("fraud")
    assert "MLmodel" in [entry["path"] for entry in browser.get(f"/models/{version.model_id}/versions/1/").context["files"]]


def test_compare_page_shows_compatible(browser, registered):
    version = registered("fraud")
    registered("fraud")
    page = browser.get(f"/models/{version.model_id}/compare/", {"base": 1, "candidate": 2}).content.decode()
    assert "compatible</span>" in page


def test_compare_page_unknown_version_shows_error(browser, registered):
    version = registered("fraud")
    response = browser.get(f"/models/{version.model_id}/compare/", {"base": 1, "candidate": 9})
    assert "no version 9" in response.context["error"]


def test_upload_page_redirects_to_version(browser, demo_model_zip):
    with open(demo_model_zip, "rb") as handle:
        response = browser.post("/models/upload/", {"model": "a/b 50%", "artifact": handle})
    assert response.url.endswith("/versions/1/")


def test_upload_page_without_file_returns_400(browser):
    assert browser.post("/models/upload/", {"model": "x"}).status_code == 400


def test_admin_lists_model(admin_client, registered):
    registered("fraud/detector")
    assert "fraud/detector" in admin_client.get("/admin/registry/registeredmodel/").content.decode()


def test_archive_button_archives_version(browser, registered):
    version = registered("fraud")
    browser.post(f"/models/{version.model_id}/versions/1/archive/", {"archived": "1"})
    version.refresh_from_db()
    assert version.archived is True


def test_restore_button_clears_archive(browser, registered):
    version = registered("fraud")
    browser.post(f"/models/{version.model_id}/versions/1/archive/", {"archived": "1"})
    browser.post(f"/models/{version.model_id}/versions/1/archive/", {"archived": "0"})
    version.refresh_from_db()
    assert version.archived is False


def test_delete_button_on_served_version_names_endpoint(browser, registered):
    version = registered("fraud")
    environment, _ = Environment.objects.get_or_create(name="development")
    endpoint = Endpoint.objects.create(name="fraud-live", environment=environment)
    ModelServer.objects.create(endpoint=endpoint, version=version, runtime="local", state="ready")
    response = browser.post(f"/models/{version.model_id}/versions/1/delete/", follow=True)
    assert "fraud-live" in [str(message) for message in response.context["messages"]][0]


def test_delete_button_removes_version(browser, registered):
    version = registered("fraud")
    browser.post(f"/models/{version.model_id}/versions/1/delete/")
    assert not type(version).objects.filter(pk=version.pk).exists()


def test_archive_requires_post(browser, registered):
    version = registered("fraud")
    assert browser.get(f"/models/{version.model_id}/versions/1/archive/").status_code == 405
