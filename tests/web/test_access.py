"""mlops_portal.access with personas: who sees which environment, and who may act where."""

import pytest

from deployments.models import Release
from mlops_portal import access
from mlops_portal.access import Capability
from mlops_portal.errors import Forbidden, InvalidInput, NotFound

pytestmark = pytest.mark.django_db


def names(queryset):
    return sorted(queryset.values_list("name", flat=True))


@pytest.mark.parametrize(
    "person, expected",
    [
        ("dana", ["development", "production"]),
        ("vic", ["development", "production"]),
        ("fran", ["development", "fraud", "production"]),
        ("olga", ["development", "fraud", "production"]),
        ("ada", ["development", "fraud", "production"]),
        ("nora", []),
    ],
)
def test_visible_environments_by_persona(world, person, expected):
    fixture_environments = access.visible_environments(world[person]).filter(name__in=["development", "production", "fraud"])
    assert names(fixture_environments) == expected


def test_visible_releases_follow_environment(world):
    visible = set(access.visible_releases(world["dana"]).values_list("pk", flat=True))
    assert world["releases"]["fraud"].pk not in visible


def test_restricted_release_not_found_for_outsider(world):
    with pytest.raises(NotFound):
        access.get_release_for_user(world["dana"], world["releases"]["fraud"].pk)


def test_missing_release_not_found(world):
    with pytest.raises(NotFound):
        access.get_release_for_user(world["olga"], 999999)


def test_viewer_cannot_operate(world):
    with pytest.raises(Forbidden):
        access.get_release_for_user(world["vic"], world["releases"]["development"].pk, Capability.OPERATE)


def test_data_scientist_operates_without_approval(world):
    release = access.get_release_for_user(world["dana"], world["releases"]["development"].pk, Capability.OPERATE)
    assert release.pk == world["releases"]["development"].pk


def test_data_scientist_cannot_operate_where_approval_needed(world):
    with pytest.raises(Forbidden):
        access.get_release_for_user(world["dave"], world["releases"]["production"].pk, Capability.OPERATE)


def test_ops_lead_operates_anywhere(world):
    release = access.get_release_for_user(world["olga"], world["releases"]["fraud"].pk, Capability.OPERATE)
    assert release.endpoint.environment.name == "fraud"


def test_requester_cannot_approve(world):
    world["releases"]["production"].requested_by = world["olga"]
    world["releases"]["production"].save()
    with pytest.raises(Forbidden, match="You requested release"):
        access.get_release_for_user(world["olga"], world["releases"]["production"].pk, Capability.APPROVE)


def test_data_scientist_cannot_approve(world):
    with pytest.raises(Forbidden):
        access.get_release_for_user(world["dave"], world["releases"]["production"].pk, Capability.APPROVE)


def test_no_role_user_has_no_roles(world):
    with pytest.raises(Forbidden, match="has no role yet"):
        access.check_has_role(world["nora"])


def test_superuser_is_admin(world):
    assert access.is_admin(world["ada"])


def test_endpoint_name_taken_in_hidden_environment(world):
    with pytest.raises(InvalidInput, match="is taken"):
        access.check_endpoint_name_for_request(world["dana"], "churn-fraud")


def test_free_endpoint_name_returns_none(world):
    assert access.check_endpoint_name_for_request(world["dana"], "churn-free") is None


def test_audit_entries_hidden_by_environment(world):
    from audit.models import AuditEntry

    AuditEntry.objects.create(action="release.state", object_type="deployments.release", object_id="1", endpoint="churn-fraud", message="x")
    AuditEntry.objects.create(action="version.register", object_type="registry.modelversion", object_id="1", message="y")
    assert list(access.visible_audit_entries(world["dana"]).values_list("message", flat=True)) == ["y"]


def test_eligible_approvers_exclude_requester_and_decided(world):
    from deployments.models import Approval

    release = world["releases"]["production"]
    Approval.objects.create(release=release, approver=world["oscar"], decision="approved")
    assert [user.username for user in access.eligible_approvers(release)] == ["ada", "olga"]


def test_roles_read_once_per_user_object(world, django_assert_num_queries):
    user = world["olga"].__class__.objects.get(pk=world["olga"].pk)
    access.user_roles(user)
    with django_assert_num_queries(0):
        access.user_roles(user)


def test_release_state_unchanged_by_lookups(world):
    access.get_release_for_user(world["olga"], world["releases"]["production"].pk, Capability.APPROVE)
    assert Release.objects.get(pk=world["releases"]["production"].pk).state == "awaiting_approval"
