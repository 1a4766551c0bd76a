from django.conf import settings


def portal(request):
    return {"gateway_url": settings.PORTAL_GATEWAY_URL}
