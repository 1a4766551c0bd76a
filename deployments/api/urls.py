from django.urls import path
from rest_framework.routers import SimpleRouter

from deployments.api import gateway
from deployments.api.views import BuildViewSet, EndpointViewSet, EnvironmentViewSet, ReleaseViewSet

router = SimpleRouter()
router.register("environments", EnvironmentViewSet, basename="environment")
router.register("endpoints", EndpointViewSet, basename="endpoint")
router.register("releases", ReleaseViewSet, basename="release")
router.register("builds", BuildViewSet, basename="build")

urlpatterns = [
    path("gateway/routes", gateway.routes, name="gateway-routes"),
    path("gateway/reports", gateway.reports, name="gateway-reports"),
    *router.urls,
]
