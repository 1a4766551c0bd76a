"""The image build API and the build summary in the release API."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from deployments.models import ImageBuild, ModelServer, Release
from tests.web.conftest import add_build, client_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/builds/"


def build_ids(response) -> list[int]:
    return [row["id"] for row in response.json()["results"]]


# --- list ---


def test_build_list_newest_first(world):
    first = add_build(world["releases"]["development"], state="succeeded")
    second = add_build(world["releases"]["development"])
    response = client_for(world["olga"]).get(URL)
    assert build_ids(response) == [second.pk, first.pk]


def test_build_list_leaves_out_log(world):
    add_build(world["releases"]["development"], log="Step 1/9 : FROM base\n")
    response = client_for(world["vic"]).get(URL)
    assert "log" not in response.json()["results"][0]


def test_build_list_hides_restricted_environment(world):
    add_build(world["releases"]["fraud"])
    visible = add_build(world["releases"]["development"])
    response = client_for(world["dana"]).get(URL)
    assert build_ids(response) == [visible.pk]


def test_build_list_shows_restricted_environment_to_member(world):
    hidden = add_build(world["releases"]["fraud"])
    response = client_for(world["fran"]).get(URL)
    assert build_ids(response) == [hidden.pk]


def test_build_list_filters_by_server(world):
    expected_build = add_build(world["releases"]["development"])
    add_build(world["releases"]["production"])
    response = client_for(world["olga"]).get(URL, {"server": expected_build.server_id})
    assert build_ids(response) == [expected_build.pk]


def test_build_list_filters_by_version(world):
    expected_build = add_build(world["releases"]["development"])
    v1_server = ModelServer.objects.create(endpoint=expected_build.server.endpoint, version=world["versions"][0], runtime="docker")
    ImageBuild.objects.create(server=v1_server, version=world["versions"][0], runtime="docker")
    response = client_for(world["olga"]).get(URL, {"version": world["versions"][1].pk})
    assert build_ids(response) == [expected_build.pk]


def test_build_list_filters_by_release(world):
    expected_build = add_build(world["releases"]["development"])
    add_build(world["releases"]["production"])
    response = client_for(world["olga"]).get(URL, {"release": world["releases"]["development"].pk})
    assert build_ids(response) == [expected_build.pk]


def test_build_list_release_filter_includes_earlier_attempts(world):
    """A retry replaces the candidate server, but the "build" events still tie the old builds to the release."""
    release = world["releases"]["development"]
    earlier = add_build(release, state="failed")
    release.events.create(kind="build", message="queued", data={"build": earlier.pk})
    release.candidate_server = None
    release.save(update_fields=["candidate_server"])
    current = add_build(release)
    response = client_for(world["olga"]).get(URL, {"release": release.pk})
    assert build_ids(response) == [current.pk, earlier.pk]


def test_build_list_rejects_non_integer_filter(world):
    response = client_for(world["olga"]).get(URL, {"server": "1.5"})
    assert response.status_code == 400


def test_build_list_filter_error_names_parameter(world):
    response = client_for(world["olga"]).get(URL, {"release": "x"})
    assert response.json()["error"]["field"] == "release"


def test_build_list_queries_flat(world, django_assert_max_num_queries):
    client = client_for(world["olga"])
    for _ in range(5):
        add_build(world["releases"]["development"])
    with CaptureQueriesContext(connection) as baseline:
        client.get(URL)

    for _ in range(45):
        add_build(world["releases"]["production"])
    with django_assert_max_num_queries(len(baseline)):
        client.get(URL)


# --- detail ---


@pytest.fixture
def finished_build(world):
    now = timezone.now()
    return add_build(
        world["releases"]["development"],
        state="succeeded",
        step="9/9",
        step_description="CMD python -m model_server",
        image="localhost/mlops-portal-test/churn:v2-abc123",
        digest="abc123",
        reused=True,
        log="Step 1/9 : FROM base\nStep 9/9 : CMD python -m model_server\n",
        started_at=now - timezone.timedelta(seconds=42),
        finished_at=now,
    )


def test_build_detail_returns_log(world, finished_build):
    response = client_for(world["vic"]).get(f"{URL}{finished_build.pk}/")
    assert response.json()["log"] == finished_build.log


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("state", "succeeded"),
        ("step", "9/9"),
        ("step_description", "CMD python -m model_server"),
        ("progress", 1.0),
        ("image", "localhost/mlops-portal-test/churn:v2-abc123"),
        ("digest", "abc123"),
        ("reused", True),
        ("failure_reason", ""),
        ("duration_seconds", 42.0),
        ("version_uri", "models:/churn/2"),
    ],
)
def test_build_detail_field(world, finished_build, field, expected):
    response = client_for(world["vic"]).get(f"{URL}{finished_build.pk}/")
    assert response.json()[field] == expected


def test_build_detail_log_offset_returns_newer_text(world, finished_build):
    offset = len("Step 1/9 : FROM base\n")
    response = client_for(world["vic"]).get(f"{URL}{finished_build.pk}/", {"log_offset": offset})
    assert response.json()["log"] == "Step 9/9 : CMD python -m model_server\n"


def test_build_detail_log_length_counts_whole_log(world, finished_build):
    response = client_for(world["vic"]).get(f"{URL}{finished_build.pk}/", {"log_offset": 5})
    assert response.json()["log_length"] == len(finished_build.log)


def test_build_detail_log_offset_past_end_returns_empty(world, finished_build):
    response = client_for(world["vic"]).get(f"{URL}{finished_build.pk}/", {"log_offset": 10_000})
    assert response.json()["log"] == ""


@pytest.mark.parametrize("offset", ["-1", "x", "1.5"])
def test_build_detail_rejects_bad_log_offset(world, finished_build, offset):
    response = client_for(world["vic"]).get(f"{URL}{finished_build.pk}/", {"log_offset": offset})
    assert response.json()["error"]["field"] == "log_offset"


def test_build_detail_marks_cut_log(world):
    build = add_build(world["releases"]["development"], log="the end\n", log_dropped=500)
    response = client_for(world["vic"]).get(f"{URL}{build.pk}/")
    assert response.json()["log_cut"] is True


def test_build_detail_offset_counts_dropped_characters(world):
    build = add_build(world["releases"]["development"], log="kept line\nlast line\n", log_dropped=500)
    response = client_for(world["vic"]).get(f"{URL}{build.pk}/", {"log_offset": 510})
    assert response.json()["log"] == "last line\n"


def test_build_detail_length_counts_dropped_characters(world):
    build = add_build(world["releases"]["development"], log="the end\n", log_dropped=500)
    response = client_for(world["vic"]).get(f"{URL}{build.pk}/")
    assert response.json()["log_length"] == 508


def test_build_detail_progress_null_before_first_step(world):
    build = add_build(world["releases"]["development"], state="queued", step="")
    response = client_for(world["vic"]).get(f"{URL}{build.pk}/")
    assert response.json()["progress"] is None


def test_build_detail_in_restricted_environment_returns_404(world):
    build = add_build(world["releases"]["fraud"])
    response = client_for(world["dana"]).get(f"{URL}{build.pk}/")
    assert response.status_code == 404


def test_build_detail_missing_build_returns_404(world):
    response = client_for(world["olga"]).get(f"{URL}999999/")
    assert response.status_code == 404


def test_build_detail_rejects_post(world, finished_build):
    response = client_for(world["ada"]).post(f"{URL}{finished_build.pk}/", {})
    assert response.status_code == 405


# --- build summary in the release API ---


def test_release_api_includes_build_summary(world):
    release = world["releases"]["development"]
    build = add_build(release, state="failed", failure_reason="pip install failed")
    response = client_for(world["vic"]).get(f"/api/v1/releases/{release.pk}/")
    assert response.json()["build"] == {
        "id": build.pk, "state": "failed", "step": "3/9", "progress": 2 / 9, "image": "", "failure_reason": "pip install failed",
    }


def test_release_api_build_summary_is_latest_build(world):
    release = world["releases"]["development"]
    add_build(release, state="failed")
    latest = add_build(release)
    response = client_for(world["vic"]).get(f"/api/v1/releases/{release.pk}/")
    assert response.json()["build"]["id"] == latest.pk


def test_release_api_build_null_without_build(world):
    release = world["releases"]["development"]
    response = client_for(world["vic"]).get(f"/api/v1/releases/{release.pk}/")
    assert response.json()["build"] is None


def test_release_api_list_includes_build_summary(world):
    release = world["releases"]["development"]
    build = add_build(release)
    response = client_for(world["olga"]).get("/api/v1/releases/")
    summaries = {row["id"]: row["build"] for row in response.json()["results"]}
    assert summaries[release.pk]["id"] == build.pk


def test_release_action_response_includes_build_summary(world):
    release = world["releases"]["fraud"]
    build = add_build(release)
    response = client_for(world["olga"]).post(f"/api/v1/releases/{release.pk}/pause/", {}, content_type="application/json")
    assert response.json()["build"]["id"] == build.pk


def test_release_api_list_queries_flat(world, django_assert_max_num_queries):
    """The build summaries come from one prefetch, not a query per release."""
    client = client_for(world["olga"])
    v1, v2 = world["versions"]

    def add_releases(count: int, start: int) -> None:
        for number in range(start, start + count):
            endpoint = world["endpoints"]["development"].environment.endpoints.create(name=f"built-{number}")
            release = Release.objects.create(endpoint=endpoint, version=v2, stable_version=v1, state="failed")
            add_build(release, state="failed")
            add_build(release, state="succeeded")

    add_releases(5, 0)
    with CaptureQueriesContext(connection) as baseline:
        client.get("/api/v1/releases/")

    add_releases(40, 5)
    with django_assert_max_num_queries(len(baseline)):
        client.get("/api/v1/releases/")


def test_schema_lists_build_paths(world):
    schema = client_for(world["vic"]).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert {"/api/v1/builds/", "/api/v1/builds/{id}/"} <= set(schema["paths"])


def test_schema_release_has_build_summary(world):
    schema = client_for(world["vic"]).get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "build" in schema["components"]["schemas"]["Release"]["properties"]
