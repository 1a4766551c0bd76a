"""The REST API under /api/v1/, in the "api" URL namespace so its route names never shadow page names."""

from deployments.api.urls import urlpatterns as deployment_routes
from registry.api.urls import urlpatterns as registry_routes

app_name = "api"

urlpatterns = [*registry_routes, *deployment_routes]
