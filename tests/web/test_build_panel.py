"""The release page's build panel, its polling, and the plain-text build log."""

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.web.conftest import add_build, client_for

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def page(world, release, person="olga") -> str:
    return client_for(world[person]).get(reverse("release-detail", args=[release.pk])).content.decode()


def panel(world, release, person="olga"):
    return client_for(world[person]).get(reverse("release-build", args=[release.pk]), **HTMX)


# --- release page ---


def test_release_page_hides_panel_without_build(world):
    assert 'data-testid="build-panel"' not in page(world, world["releases"]["fraud"])


def test_release_page_shows_build_state(world):
    add_build(world["releases"]["fraud"])
    assert 'data-testid="build-state">Running</span>' in page(world, world["releases"]["fraud"])


def test_release_page_shows_step_and_instruction(world):
    add_build(world["releases"]["fraud"], step="3/9", step_description="RUN pip install -r requirements.txt")
    assert "step 3 of 9: <code>RUN pip install -r requirements.txt</code>" in page(world, world["releases"]["fraud"])


def test_release_page_shows_build_progress(world):
    add_build(world["releases"]["fraud"], step="5/9")
    html = page(world, world["releases"]["fraud"])
    assert 'aria-valuenow="44" data-testid="build-progress"' in html


def test_release_page_shows_build_duration(world):
    now = timezone.now()
    add_build(world["releases"]["fraud"], state="succeeded", started_at=now - timezone.timedelta(seconds=95), finished_at=now)
    assert "took 1 min 35 s" in page(world, world["releases"]["fraud"])


def test_release_page_shows_image_tag(world):
    add_build(world["releases"]["fraud"], state="succeeded", image="localhost/mlops-portal-test/churn:v2-abc")
    assert 'data-testid="build-image">localhost/mlops-portal-test/churn:v2-abc</code>' in page(world, world["releases"]["fraud"])


def test_release_page_notes_reused_image(world):
    add_build(world["releases"]["fraud"], state="succeeded", image="localhost/x:v2", reused=True)
    assert 'data-testid="build-reused"' in page(world, world["releases"]["fraud"])


def test_release_page_omits_reused_note_for_new_image(world):
    add_build(world["releases"]["fraud"], state="succeeded", image="localhost/x:v2", reused=False)
    assert 'data-testid="build-reused"' not in page(world, world["releases"]["fraud"])


def test_release_page_shows_failure_reason(world):
    add_build(world["releases"]["fraud"], state="failed", failure_reason="pip could not find mlflow==9.9")
    html = page(world, world["releases"]["fraud"])
    assert "pip could not find mlflow==9.9" in html.split('data-testid="build-failure"')[1]


def test_release_page_escapes_log(world):
    add_build(world["releases"]["fraud"], log="<script>alert(1)</script>\n")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page(world, world["releases"]["fraud"])


def test_release_page_shows_last_log_lines(world):
    log = "".join(f"line {number}\n" for number in range(1, 251))
    add_build(world["releases"]["fraud"], log=log)
    log_text = page(world, world["releases"]["fraud"]).split('data-testid="build-log"')[1].split("</pre>")[0]
    assert "line 51\n" in log_text
    assert "line 50\n" not in log_text
    assert log_text.endswith("line 250")


def test_release_page_counts_hidden_log_lines(world):
    log = "".join(f"line {number}\n" for number in range(1, 251))
    add_build(world["releases"]["fraud"], log=log)
    assert "The first 50 of 250 lines are hidden here." in page(world, world["releases"]["fraud"])


def test_release_page_links_full_log(world):
    build = add_build(world["releases"]["fraud"], log="Step 1/9 : FROM base\n")
    assert f'href="{reverse("build-log", args=[build.pk])}"' in page(world, world["releases"]["fraud"])


def test_release_page_shows_latest_build(world):
    release = world["releases"]["fraud"]
    add_build(release, state="failed", failure_reason="first attempt failed")
    add_build(release, state="running")
    assert "first attempt failed" not in page(world, release)


# --- polling ---


def test_build_panel_polls_while_running(world):
    add_build(world["releases"]["fraud"], state="running")
    response = panel(world, world["releases"]["fraud"])
    assert 'hx-trigger="every 1s, release-state-changed from:body"' in response.content.decode()


def test_build_panel_running_returns_200(world):
    add_build(world["releases"]["fraud"], state="running")
    assert panel(world, world["releases"]["fraud"]).status_code == 200


@pytest.mark.parametrize("state", ["succeeded", "failed"])
def test_build_panel_final_stops_polling(world, state):
    add_build(world["releases"]["fraud"], state=state)
    assert panel(world, world["releases"]["fraud"]).status_code == 286


@pytest.mark.parametrize("state", ["succeeded", "failed"])
def test_build_panel_final_drops_poll_trigger(world, state):
    add_build(world["releases"]["fraud"], state=state)
    response = panel(world, world["releases"]["fraud"])
    assert 'hx-trigger="release-state-changed from:body"' in response.content.decode()


def test_release_page_final_build_does_not_poll(world):
    add_build(world["releases"]["fraud"], state="succeeded")
    assert 'data-polling="false"' in page(world, world["releases"]["fraud"])


def test_build_panel_polls_while_build_may_start(world):
    """A building release whose build is not queued yet keeps polling, so the panel appears once it is."""
    release = world["releases"]["fraud"]
    release.state = "building"
    release.save(update_fields=["state"])
    assert panel(world, release).status_code == 200


def test_build_panel_without_build_stops_polling_when_progressing(world):
    assert panel(world, world["releases"]["fraud"]).status_code == 286


def test_build_panel_in_restricted_environment_returns_404(world):
    add_build(world["releases"]["fraud"])
    assert panel(world, world["releases"]["fraud"], person="dana").status_code == 404


# --- full log ---


def test_build_log_returns_plain_text(world):
    build = add_build(world["releases"]["fraud"], log="Step 1/9 : FROM base\n")
    response = client_for(world["olga"]).get(reverse("build-log", args=[build.pk]))
    assert response["Content-Type"] == "text/plain; charset=utf-8"


def test_build_log_returns_whole_log(world):
    log = "".join(f"line {number}\n" for number in range(1, 251))
    build = add_build(world["releases"]["fraud"], log=log)
    response = client_for(world["olga"]).get(reverse("build-log", args=[build.pk]))
    assert response.content.decode() == log


def test_build_log_in_restricted_environment_returns_404(world):
    build = add_build(world["releases"]["fraud"], log="secret\n")
    response = client_for(world["dana"]).get(reverse("build-log", args=[build.pk]))
    assert response.status_code == 404


def test_build_log_log_text_to_restricted_group_member(world):
    build = add_build(world["releases"]["fraud"], log="Step 1/9 : FROM base\n")
    response = client_for(world["fran"]).get(reverse("build-log", args=[build.pk]))
    assert response.status_code == 200


def test_build_log_missing_build_returns_404(world):
    response = client_for(world["olga"]).get(reverse("build-log", args=[999999]))
    assert response.status_code == 404
