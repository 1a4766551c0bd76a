"""DRF permission classes that apply mlops_portal.access to the API.

Detail routes look their object up through the same `get_<object>_for_user`
helper as the pages, so the API returns 404 for an object the user may not see
and 403 for one the user may see but not change. The object found is kept on
the request (`request.portal_object`) for the view.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, IsAuthenticated

from mlops_portal import access
from mlops_portal.access import Capability
from mlops_portal.errors import Forbidden

# Release actions that need another capability than OPERATE; any other
# action with an unsafe method (pause, rollback, ...) needs OPERATE.
RELEASE_ACTION_CAPABILITIES = {"approve": Capability.APPROVE, "reject": Capability.APPROVE, "abort": Capability.ABORT}


def _capability(request, view, special: dict[str, Capability], default: Capability) -> Capability:
    if request.method in SAFE_METHODS:
        return Capability.VIEW
    return special.get(view.action, default)


class PortalAccess(IsAuthenticated):
    """Signed in, by session or token, and holding at least one role."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        access.forget_roles(request.user)
        access.check_has_role(request.user)
        return True


class ReleaseAccess(PortalAccess):
    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False

        if view.action == "create":
            access.check_can_request(request.user)
        elif "pk" in view.kwargs:
            capability = _capability(request, view, RELEASE_ACTION_CAPABILITIES, Capability.OPERATE)
            request.portal_object = access.get_release_for_user(request.user, view.kwargs["pk"], capability)
        return True


class EndpointAccess(PortalAccess):
    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False

        if view.action == "create":
            access.check_can_request(request.user)
        elif "name" in view.kwargs:
            capability = _capability(request, view, {}, Capability.OPERATE)
            request.portal_object = access.get_endpoint_for_user(request.user, view.kwargs["name"], capability)
        return True


class BuildAccess(PortalAccess):
    """Image builds are read-only, and every role may read the builds in the environments visible to it."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False

        if "pk" in view.kwargs:
            request.portal_object = access.get_build_for_user(request.user, view.kwargs["pk"])
        return True


class EnvironmentAccess(PortalAccess):
    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False

        if request.method not in SAFE_METHODS and not access.is_admin(request.user):
            raise Forbidden("Only an admin can create or change environments.")
        if "name" in view.kwargs:
            request.portal_object = access.get_environment_for_user(request.user, view.kwargs["name"])
        return True


class ModelAccess(PortalAccess):
    """Registered models and versions: every role reads them, data scientists and admins change them."""

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False

        if request.method not in SAFE_METHODS:
            access.check_model_capability(request.user, Capability.REGISTER)
        return True

