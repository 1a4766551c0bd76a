"""Release actions through the service functions and the API: pause, resume, promote, abort, rollback, retry."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import AuditEntry
from deployments.models import ModelServer, Release, RouteBackend
from deployments.services import controller, releases
from mlops_portal.errors import Conflict, InvalidInput

pytestmark = pytest.mark.django_db

URL = "/api/v1/releases/{id}/{action}/"
CANARY = {"steps": [{"weight": 10}, {"pause": {"duration": 60}}, {"weight": 50}, {"pause": {}}]}


def _split(release) -> dict[int, Decimal]:
    return dict(RouteBackend.objects.filter(endpoint=release.endpoint).values_list("server_id", "weight"))


@pytest.fixture
def canary(make_release):
    """A canary release at 10 % in its timed pause (step 2 of 4)."""
    release = make_release(plan=CANARY)
    controller.advance(release.pk)
    release.refresh_from_db()
    return release


# Pause and resume


def test_pause_sets_paused(canary, user):
    release = releases.pause(canary.pk, actor=user, reason="checking dashboards")
    assert (release.state, release.pause_reason) == ("paused", "manual")


def test_pause_records_actor_and_reason(canary, user):
    releases.pause(canary.pk, actor=user, reason="checking dashboards")
    event = canary.events.get(kind="pause")
    assert (event.actor, event.data["reason"]) == (user, "checking dashboards")


def test_pause_writes_audit_entry(canary, user):
    releases.pause(canary.pk, actor=user, reason="checking dashboards")
    assert AuditEntry.objects.filter(action="release.pause", actor=user, object_id=str(canary.pk)).count() == 1


def test_pause_keeps_traffic_split(canary, user):
    releases.pause(canary.pk, actor=user)
    assert _split(canary)[canary.candidate_server_id] == Decimal("10.0")


def test_pause_stops_controller_chain(canary, user):
    token = canary.run_token
    releases.pause(canary.pk, actor=user)
    assert controller.advance(canary.pk, token) is None


def test_pause_of_paused_release_conflicts(canary, user):
    releases.pause(canary.pk, actor=user)
    with pytest.raises(Conflict) as caught:
        releases.pause(canary.pk, actor=user)
    assert caught.value.details == {"state": "paused"}


def test_resume_keeps_remaining_pause_time(canary, user):
    """The step ran 20 s, then stayed paused 100 s: after resuming it has run 20 s."""
    releases.pause(canary.pk, actor=user)
    now = timezone.now()
    Release.objects.filter(pk=canary.pk).update(
        step_started_at=now - timedelta(seconds=120), paused_at=now - timedelta(seconds=100)
    )
    release = releases.resume(canary.pk, actor=user)
    elapsed = (timezone.now() - release.step_started_at).total_seconds()
    assert 19 < elapsed < 22


def test_resume_sets_progressing(canary, user):
    releases.pause(canary.pk, actor=user)
    assert releases.resume(canary.pk, actor=user).state == "progressing"


def test_resume_after_pause_step_moves_on(make_release, user):
    release = make_release(plan={"steps": [{"pause": {}}, {"weight": 10}]})
    controller.advance(release.pk)
    release = releases.resume(release.pk, actor=user)
    assert release.step_index == 1


def test_resume_of_progressing_release_conflicts(canary, user):
    with pytest.raises(Conflict) as caught:
        releases.resume(canary.pk, actor=user)
    assert caught.value.details == {"state": "progressing"}


# Promote


def test_promote_skips_timed_pause(canary, user):
    release = releases.promote(canary.pk, actor=user, reason="looks good")
    assert release.step_index == 2


def test_promote_records_skipped_step(canary, user):
    releases.promote(canary.pk, actor=user, reason="looks good")
    assert "past step 2 of 4 (pause 60 s)" in canary.events.get(kind="promote").message


def test_promote_paused_release_resumes(canary, user):
    releases.pause(canary.pk, actor=user)
    assert releases.promote(canary.pk, actor=user).state == "progressing"


def test_promote_blue_green_switches_traffic(make_release, user):
    release = make_release(strategy="blue_green", plan={"auto_promote": False})
    controller.advance(release.pk)
    releases.promote(release.pk, actor=user)
    assert _split(release) == {release.candidate_server_id: Decimal("100.0")}


def test_promote_of_final_release_conflicts(canary, user):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    with pytest.raises(Conflict) as caught:
        releases.promote(canary.pk, actor=user)
    assert caught.value.details == {"state": "aborted"}


def test_promote_before_candidate_ready_conflicts(make_release, user):
    release = make_release(state=Release.State.PAUSED, pause_reason="deadline")
    ModelServer.objects.filter(pk=release.candidate_server_id).update(state="starting")
    with pytest.raises(Conflict):
        releases.promote(release.pk, actor=user)


def test_promote_fully_sends_all_traffic_to_candidate(canary, user):
    releases.promote_fully(canary.pk, actor=user)
    assert _split(canary) == {canary.candidate_server_id: Decimal("100.0")}


def test_promote_fully_marks_promoted(canary, user):
    assert releases.promote_fully(canary.pk, actor=user).state == "promoted"


def test_promote_fully_schedules_stable_scale_down(canary, user):
    releases.promote_fully(canary.pk, actor=user)
    canary.stable_server.refresh_from_db()
    assert canary.stable_server.stop_after is not None


# Abort


def test_abort_returns_all_traffic_to_stable(canary, user):
    releases.abort(canary.pk, actor=user, reason="bad numbers")
    assert _split(canary) == {canary.stable_server_id: Decimal("100.0")}


def test_abort_keeps_candidate_running(canary, user):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    canary.candidate_server.refresh_from_db()
    assert canary.candidate_server.state == "ready"


def test_abort_stops_candidate_after_retention(canary, user, settings):
    settings.PORTAL_ABORTED_CANDIDATE_RETENTION = 600
    before = timezone.now()
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    canary.candidate_server.refresh_from_db()
    assert canary.candidate_server.stop_after >= before + timedelta(seconds=600)


def test_abort_sets_aborted(canary, user):
    assert releases.abort(canary.pk, actor=user, reason="numbers look off").state == "aborted"


def test_abort_of_aborted_release_conflicts(canary, user):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    with pytest.raises(Conflict) as caught:
        releases.abort(canary.pk, actor=user, reason="numbers look off")
    assert caught.value.details == {"state": "aborted"}


def test_next_release_stops_aborted_candidate(canary, user, model_version):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    releases.create_release(canary.endpoint, model_version, actor=user)
    canary.candidate_server.refresh_from_db()
    assert canary.candidate_server.stop_after is not None


# Rollback


def test_rollback_after_promotion_restores_stable(canary, user):
    releases.promote_fully(canary.pk, actor=user)
    releases.rollback(canary.pk, actor=user, reason="regression")
    assert _split(canary) == {canary.stable_server_id: Decimal("100.0")}


def test_rollback_keeps_stable_running(canary, user):
    releases.promote_fully(canary.pk, actor=user)
    releases.rollback(canary.pk, actor=user, reason="regression")
    canary.stable_server.refresh_from_db()
    assert canary.stable_server.stop_after is None


def test_rollback_with_stopped_stable_starts_new_release(canary, user):
    releases.promote_fully(canary.pk, actor=user)
    ModelServer.objects.filter(pk=canary.stable_server_id).update(state="stopped")
    releases.rollback(canary.pk, actor=user, reason="regression")
    restart = Release.objects.exclude(pk=canary.pk).get()
    assert (restart.version_id, restart.state, restart.plan["rollback_of"]) == (canary.stable_version_id, "approved", canary.pk)


def test_rollback_of_progressing_release_conflicts(canary, user):
    with pytest.raises(Conflict) as caught:
        releases.rollback(canary.pk, actor=user, reason="regression")
    assert caught.value.details == {"state": "progressing"}


# Retry


def test_retry_failed_release_starts_next_attempt(canary, user):
    controller.fail(Release.objects.get(pk=canary.pk), "test failure")
    release = releases.retry(canary.pk, actor=user)
    assert (release.state, release.attempt, release.step_index) == ("approved", 2, 0)


def test_retry_clears_failure_reason(canary, user):
    controller.fail(Release.objects.get(pk=canary.pk), "test failure")
    assert releases.retry(canary.pk, actor=user).failure_reason == ""


def test_retry_aborted_release_reuses_candidate(canary, user):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    assert releases.retry(canary.pk, actor=user).candidate_server_id == canary.candidate_server_id


def test_retry_cancels_reused_candidate_scale_down(canary, user):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    releases.retry(canary.pk, actor=user)
    canary.candidate_server.refresh_from_db()
    assert canary.candidate_server.stop_after is None


def test_next_release_stops_aborted_candidate_now(canary, user, model_version):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    releases.create_release(canary.endpoint, model_version, actor=user)
    canary.candidate_server.refresh_from_db()
    assert canary.candidate_server.stop_after <= timezone.now()


def test_retry_failed_release_needs_new_candidate(canary, user):
    controller.fail(Release.objects.get(pk=canary.pk), "test failure")
    assert releases.retry(canary.pk, actor=user).candidate_server_id is None


def test_retry_of_progressing_release_conflicts(canary, user):
    with pytest.raises(Conflict) as caught:
        releases.retry(canary.pk, actor=user)
    assert caught.value.details == {"state": "progressing"}


def test_retry_with_newer_release_conflicts(canary, user, model_version):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    releases.create_release(canary.endpoint, model_version, actor=user)
    with pytest.raises(Conflict) as caught:
        releases.retry(canary.pk, actor=user)
    assert caught.value.details["state"] == "aborted"


# API


def test_api_pause_returns_paused_release(api_client, canary):
    response = api_client.post(URL.format(id=canary.pk, action="pause"), {"reason": "lunch"}, format="json")
    assert response.json()["state"] == "paused"


def test_api_pause_wrong_state_returns_409(api_client, canary):
    releases.abort(canary.pk, reason="numbers look off")
    response = api_client.post(URL.format(id=canary.pk, action="pause"), {}, format="json")
    assert response.status_code == 409


def test_api_conflict_reports_state(api_client, canary):
    releases.abort(canary.pk, reason="numbers look off")
    response = api_client.post(URL.format(id=canary.pk, action="resume"), {}, format="json")
    assert response.json()["error"]["details"] == {"state": "aborted"}


@pytest.mark.parametrize("action", ["pause", "resume", "promote", "promote-fully", "abort", "rollback", "retry"])
def test_api_action_missing_release_returns_404(api_client, action):
    response = api_client.post(URL.format(id=999, action=action), {}, format="json")
    assert response.status_code == 404


def test_api_promote_fully_records_actor(api_client, user, canary):
    api_client.post(URL.format(id=canary.pk, action="promote-fully"), {"reason": "ship it"}, format="json")
    assert canary.events.get(kind="promote_fully").actor == user


def test_api_abort_returns_aborted(api_client, canary):
    response = api_client.post(URL.format(id=canary.pk, action="abort"), {"reason": "numbers look off"}, format="json")
    assert response.json()["state"] == "aborted"


def test_api_retry_returns_approved(api_client, canary):
    releases.abort(canary.pk, reason="numbers look off")
    response = api_client.post(URL.format(id=canary.pk, action="retry"), {}, format="json")
    assert response.json()["state"] == "approved"


def test_api_reason_too_long_returns_400(api_client, canary):
    response = api_client.post(URL.format(id=canary.pk, action="pause"), {"reason": "x" * 3000}, format="json")
    assert response.json()["error"]["field"] == "reason"


def test_resume_after_build_deadline_returns_to_building(make_release, user):
    release = make_release(state=Release.State.PAUSED, pause_reason="deadline", paused_at=timezone.now())
    ModelServer.objects.filter(pk=release.candidate_server_id).update(state="pending")
    assert releases.resume(release.pk, actor=user).state == "building"


def test_retry_checks_reused_candidate_again(canary, user):
    releases.abort(canary.pk, actor=user, reason="numbers look off")
    releases.retry(canary.pk, actor=user)
    assert ModelServer.objects.get(pk=canary.candidate_server_id).state == "starting"


# Reasons for abort and rollback


@pytest.mark.parametrize("reason", ["", "   "])
def test_abort_without_reason_names_field(canary, user, reason):
    with pytest.raises(InvalidInput) as caught:
        releases.abort(canary.pk, actor=user, reason=reason)
    assert caught.value.field == "reason"


def test_abort_without_reason_keeps_state(canary, user):
    with pytest.raises(InvalidInput):
        releases.abort(canary.pk, actor=user, reason="")
    canary.refresh_from_db()
    assert canary.state == "progressing"


def test_rollback_without_reason_names_field(canary, user):
    releases.promote_fully(canary.pk, actor=user)
    with pytest.raises(InvalidInput) as caught:
        releases.rollback(canary.pk, actor=user, reason="")
    assert caught.value.field == "reason"


def test_api_abort_without_reason_returns_400(api_client, canary):
    response = api_client.post(URL.format(id=canary.pk, action="abort"), {}, format="json")
    assert response.status_code == 400


def test_api_abort_without_reason_explains_why(api_client, canary):
    response = api_client.post(URL.format(id=canary.pk, action="abort"), {"reason": ""}, format="json")
    assert response.json()["error"] == {
        "code": "invalid",
        "field": "reason",
        "message": f"Give a reason to abort release {canary.pk}. It is stored in the release's event log "
        "and the audit log, so others can see why the release ended.",
    }


def test_api_rollback_without_reason_names_field(api_client, user, canary):
    releases.promote_fully(canary.pk, actor=user)
    response = api_client.post(URL.format(id=canary.pk, action="rollback"), {}, format="json")
    assert response.json()["error"]["field"] == "reason"


# Conflict messages


def test_conflict_message_uses_display_names(canary, user):
    releases.promote_fully(canary.pk, actor=user)
    with pytest.raises(Conflict) as caught:
        releases.abort(canary.pk, actor=user, reason="numbers look off")
    assert caught.value.message == (
        f"Release {canary.pk} is promoted, so it cannot be aborted. Only a release that is "
        "awaiting approval, approved, building, deploying, progressing or paused can."
    )


def test_conflict_message_single_state(canary, user):
    with pytest.raises(Conflict) as caught:
        releases.resume(canary.pk, actor=user)
    assert caught.value.message == f"Release {canary.pk} is progressing, so it cannot be resumed. Only a release that is paused can."


def test_rollback_with_stopped_stable_names_restart_release(canary, user):
    releases.promote_fully(canary.pk, actor=user)
    ModelServer.objects.filter(pk=canary.stable_server_id).update(state="stopped")
    releases.rollback(canary.pk, actor=user, reason="regression")
    restart = Release.objects.exclude(pk=canary.pk).get()
    assert f"so release {restart.pk} starts it again" in canary.events.get(kind="rollback").message
