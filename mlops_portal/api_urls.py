"""The REST API under /api/v1/, in the "api" URL namespace so its route names never shadow page names."""

from django.urls import path

from deployments.api.urls import urlpatterns as deployment_routes
from mlops_portal.api_views import ApiRootView
from registry.api.urls import urlpatterns as registry_routes

app_name = "api"

urlpatterns = [path("", ApiRootView.as_view(), name="root"), *registry_routes, *deployment_routes]
