from django.urls import path
from rest_framework.routers import SimpleRouter

from registry.api.views import ModelVersionViewSet, RegisteredModelViewSet

router = SimpleRouter()
router.register("models", RegisteredModelViewSet, basename="model")

version_list = ModelVersionViewSet.as_view({"get": "list", "post": "create"})
version_detail = ModelVersionViewSet.as_view({"get": "retrieve"})

urlpatterns = [
    path("models/<str:model_name>/versions/", version_list, name="model-version-list"),
    path("models/<str:model_name>/versions/<int:version>/", version_detail, name="model-version-detail"),
    *router.urls,
]
