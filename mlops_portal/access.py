"""Access rules: roles, visibility, and one lookup helper per object type.

Roles are Django groups (created by a data migration in deployments):

- data scientist: registers models, requests releases, and acts on releases
  (pause, resume, promote, abort, roll back, retry) in environments that need
  no approval;
- ops lead: approves and rejects releases, and acts on releases anywhere;
- viewer: reads everything visible and changes nothing;
- admin (the group, or a superuser): everything, including environments.

Visibility: an environment with no `restricted_to` groups is visible to every
user with a role. A restricted environment is visible only to members of one of
its groups, to ops leads and to admins. Endpoints, releases and image builds
are visible when their environment is, and audit entries when their endpoint is (entries without
an endpoint, such as model registrations, are visible to every user with a
role). Registered models are not tied to an environment and are visible to
every user with a role. A signed-in user without a role gets 403 on every page and API route
(`check_has_role`), because an admin has not set the account up yet.

The `get_<object>_for_user` helpers raise `NotFound` for an object the user may
not see, exactly as for one that does not exist, and `Forbidden` for one the
user may see but not change. Pages and the API both call them. Registered
models and their versions need no lookup helper, because every role sees
them; `check_model_capability` is their one rule.
"""

from __future__ import annotations

import enum

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet

from audit.models import AuditEntry
from deployments.models import Endpoint, Environment, ImageBuild, Release
from mlops_portal.errors import Forbidden, InvalidInput, NotFound
from registry.models import RegisteredModel

DATA_SCIENTIST = "data scientist"
OPS_LEAD = "ops lead"
VIEWER = "viewer"
ADMIN = "admin"
ROLES = (DATA_SCIENTIST, OPS_LEAD, VIEWER, ADMIN)


class Capability(enum.Enum):
    """An action on an object; each helper maps it to the roles that may take it."""

    VIEW = "view"
    REGISTER = "register"  # register model versions, set aliases
    REQUEST = "request"  # request a release, create an endpoint
    OPERATE = "operate"  # pause, resume, promote, abort, roll back, retry
    ABORT = "abort"  # OPERATE, or the requester of a release that has not started (withdrawing it)
    APPROVE = "approve"  # approve or reject a release
    ADMINISTER = "administer"  # create and change environments


# --- roles ---


def user_roles(user) -> frozenset[str]:
    """Return the user's roles, read once per user object (so once per request)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_portal_roles", None)
    if cached is None:
        groups = list(user.groups.values_list("pk", "name"))
        names = {name for _, name in groups if name in ROLES}
        if user.is_superuser:
            names.add(ADMIN)
        cached = frozenset(names)
        user._portal_roles = cached
        user._portal_group_ids = frozenset(pk for pk, _ in groups)
    return cached


def forget_roles(user) -> None:
    """Drop the roles and visibility cached on a user object, so the next check reads them again.

    Call it at the start of a request whose user object may outlive one request
    (DRF's force_authenticate in tests reuses the same object).
    """
    for name in ("_portal_roles", "_portal_group_ids", "_portal_environment_ids"):
        user.__dict__.pop(name, None)


def _group_ids(user) -> frozenset[int]:
    user_roles(user)
    return getattr(user, "_portal_group_ids", frozenset())


def has_role(user, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def is_admin(user) -> bool:
    return has_role(user, ADMIN)


def sees_every_environment(user) -> bool:
    return has_role(user, ADMIN, OPS_LEAD)


def check_has_role(user) -> None:
    if not user_roles(user):
        raise Forbidden(no_role_message(user))


def no_role_message(user) -> str:
    return (
        f"The account {user.get_username()!r} has no role yet; "
        f"ask an admin to add it to one of the groups {', '.join(ROLES)}."
    )


def role_label(user) -> str:
    """Return the user's roles for display, such as "ops lead, viewer"."""
    return ", ".join(sorted(user_roles(user))) or "no role"


# --- querysets of what a user may see ---


def visible_environments(user) -> QuerySet[Environment]:
    if not user_roles(user):
        return Environment.objects.none()
    if sees_every_environment(user):
        return Environment.objects.all()
    return Environment.objects.filter(pk__in=_visible_environment_ids(user))


def _visible_environment_ids(user) -> list[int]:
    """Return the ids of environments open to everyone with a role or to one of the user's groups."""
    cached = getattr(user, "_portal_environment_ids", None)
    if cached is None:
        open_or_shared = Q(restricted_to__isnull=True) | Q(restricted_to__in=_group_ids(user))
        cached = sorted(set(Environment.objects.filter(open_or_shared).values_list("pk", flat=True)))
        user._portal_environment_ids = cached
    return cached


def visible_endpoints(user) -> QuerySet[Endpoint]:
    if not user_roles(user):
        return Endpoint.objects.none()
    if sees_every_environment(user):
        return Endpoint.objects.all()
    return Endpoint.objects.filter(environment_id__in=_visible_environment_ids(user))


def visible_releases(user) -> QuerySet[Release]:
    if not user_roles(user):
        return Release.objects.none()
    if sees_every_environment(user):
        return Release.objects.all()
    return Release.objects.filter(endpoint__environment_id__in=_visible_environment_ids(user))


def visible_builds(user) -> QuerySet[ImageBuild]:
    if not user_roles(user):
        return ImageBuild.objects.none()
    if sees_every_environment(user):
        return ImageBuild.objects.all()
    return ImageBuild.objects.filter(server__endpoint__environment_id__in=_visible_environment_ids(user))


def visible_models(user) -> QuerySet[RegisteredModel]:
    if not user_roles(user):
        return RegisteredModel.objects.none()
    return RegisteredModel.objects.all()



def visible_audit_entries(user) -> QuerySet[AuditEntry]:
    if not user_roles(user):
        return AuditEntry.objects.none()
    if sees_every_environment(user):
        return AuditEntry.objects.all()
    endpoint_names = Endpoint.objects.filter(environment_id__in=_visible_environment_ids(user)).values("name")
    return AuditEntry.objects.filter(Q(endpoint="") | Q(endpoint__in=endpoint_names))


# --- capability checks on visible objects ---


def can_register(user) -> bool:
    return has_role(user, ADMIN, DATA_SCIENTIST)


def can_request_in(user, environment: Environment) -> bool:
    return has_role(user, ADMIN, DATA_SCIENTIST)


def check_can_request(user) -> None:
    """Raise Forbidden unless the user's role may request releases somewhere."""
    if not has_role(user, ADMIN, DATA_SCIENTIST):
        raise Forbidden(f"Your role ({role_label(user)}) cannot request releases; a data scientist or an admin can.")


def can_operate_in(user, environment: Environment) -> bool:
    """Return whether the user may pause, resume, promote, abort, roll back or retry releases there."""
    if has_role(user, ADMIN, OPS_LEAD):
        return True
    return has_role(user, DATA_SCIENTIST) and not environment.requires_approval


def can_abort(user, release: Release) -> bool:
    """Return whether the user may abort `release`: anyone who operates releases there, or its requester before it starts.

    The requester's right depends on the state read without a lock. A release
    approved in between still ends, and the service records its traffic change.
    """
    if can_operate_in(user, release.endpoint.environment):
        return True
    return release.requested_by_id == user.pk and has_role(user, ADMIN, DATA_SCIENTIST) and release.can_be_withdrawn


def can_approve(user, release: Release) -> bool:
    """Return whether the user holds an approving role and did not request the release."""
    return has_role(user, ADMIN, OPS_LEAD) and release.requested_by_id != user.pk


def _check_environment_capability(user, environment: Environment, capability: Capability, object_label: str) -> None:
    if capability == Capability.VIEW:
        return
    if capability == Capability.REQUEST and not can_request_in(user, environment):
        raise Forbidden(f"Your role ({role_label(user)}) cannot request releases; a data scientist or an admin can.")
    if capability == Capability.OPERATE and not can_operate_in(user, environment):
        raise Forbidden(
            f"Your role ({role_label(user)}) cannot act on releases in {environment.name}; "
            + ("an ops lead or an admin can." if environment.requires_approval else "a data scientist, an ops lead or an admin can.")
        )
    if capability == Capability.ADMINISTER and not is_admin(user):
        raise Forbidden(f"Only an admin can change {object_label}.")
    if capability in (Capability.APPROVE, Capability.REGISTER):
        raise ValueError(f"Capability {capability.value} does not apply to {object_label}.")


# --- one lookup helper per object type ---


def get_environment_for_user(user, name: str, capability: Capability = Capability.VIEW) -> Environment:
    environment = visible_environments(user).filter(name=name).first()
    if environment is None:
        raise NotFound(f"Environment {name!r} does not exist.", field="environment")
    _check_environment_capability(user, environment, capability, f"environment {environment.name}")
    return environment


def get_endpoint_for_user(
    user, name: str, capability: Capability = Capability.VIEW, queryset: QuerySet[Endpoint] | None = None
) -> Endpoint:
    base = queryset if queryset is not None else Endpoint.objects.select_related("environment")
    endpoint = base.filter(pk__in=visible_endpoints(user).values("pk"), name=name).first()
    if endpoint is None:
        raise NotFound(f"Endpoint {name!r} does not exist.", field="endpoint")
    _check_environment_capability(user, endpoint.environment, capability, f"endpoint {endpoint.name}")
    return endpoint


def check_endpoint_name_for_request(user, name: str) -> Endpoint | None:
    """Return the existing endpoint `name` on which the user may request a release, or None when the name is free.

    A name taken by an endpoint that the user cannot see is reported as taken,
    without saying where, because endpoint names are unique across environments.
    """
    endpoint = Endpoint.objects.select_related("environment").filter(name=name).first()
    if endpoint is None:
        return None
    if not visible_endpoints(user).filter(pk=endpoint.pk).exists():
        raise InvalidInput(f"The endpoint name {name!r} is taken; choose another name.", field="endpoint")
    _check_environment_capability(user, endpoint.environment, Capability.REQUEST, f"endpoint {endpoint.name}")
    return endpoint


def get_release_for_user(
    user, release_id, capability: Capability = Capability.VIEW, queryset: QuerySet[Release] | None = None
) -> Release:
    """Return a release the user may see, checked for `capability`.

    APPROVE also rejects the release's requester, because a requester may
    not approve their own release. ABORT also accepts the requester of a
    release that has not started (see can_abort).
    """
    base = queryset if queryset is not None else Release.objects.select_related("endpoint__environment")
    release = _visible(base, visible_releases(user), release_id)
    if release is None:
        raise NotFound(f"Release {release_id} does not exist.")

    if capability == Capability.APPROVE:
        if not has_role(user, ADMIN, OPS_LEAD):
            raise Forbidden(f"Your role ({role_label(user)}) cannot approve releases; an ops lead or an admin can.")
        if release.requested_by_id == user.pk:
            raise Forbidden(f"You requested release {release.pk}, so another ops lead must approve or reject it.")
        return release

    if capability == Capability.ABORT:
        if can_abort(user, release):
            return release
        # The operate rule explains the refusal, since the requester's exception does not apply.
        capability = Capability.OPERATE

    _check_environment_capability(user, release.endpoint.environment, capability, f"release {release.pk}")
    return release


def get_build_for_user(user, build_id, queryset: QuerySet[ImageBuild] | None = None) -> ImageBuild:
    """Return an image build the user may see. Builds are read-only, so VIEW is the only capability they need."""
    base = queryset if queryset is not None else ImageBuild.objects.select_related("server__endpoint__environment", "version__model")
    build = _visible(base, visible_builds(user), build_id)
    if build is None:
        raise NotFound(f"Image build {build_id} does not exist.")
    return build


def check_model_capability(user, capability: Capability) -> None:
    """Raise Forbidden unless the user may do `capability` to registered models (all share one rule)."""
    if capability == Capability.VIEW:
        check_has_role(user)
        return
    if capability == Capability.REGISTER and can_register(user):
        return
    raise Forbidden(f"Your role ({role_label(user)}) cannot change models; a data scientist or an admin can.")


def _visible(base: QuerySet, visible: QuerySet, pk):
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        return None
    return base.filter(pk=pk, pk__in=visible.values("pk")).first()


# --- who can act ---


def eligible_approvers(release: Release) -> list:
    """Return the active users who may still approve `release`: ops leads and admins, minus the requester
    and anyone who already decided."""
    User = get_user_model()
    approving = Q(is_superuser=True) | Q(groups__name__in=[OPS_LEAD, ADMIN])
    decided = release.approvals.values("approver_id")
    users = (
        User.objects.filter(approving, is_active=True)
        .exclude(pk=release.requested_by_id or 0)
        .exclude(pk__in=decided)
        .distinct()
        .order_by("username")
    )
    return list(users)

