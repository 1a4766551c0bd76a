from django.conf import settings

from mlops_portal import access


def portal(request):
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    return {
        "gateway_url": settings.PORTAL_GATEWAY_URL,
        "portal_roles": access.role_label(user) if signed_in else "",
        "portal_can_request": signed_in and access.has_role(user, access.ADMIN, access.DATA_SCIENTIST),
        "portal_can_register": signed_in and access.can_register(user),
    }
