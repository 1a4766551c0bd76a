from django.urls import path

from registry import views

app_name = "registry"

urlpatterns = [
    path("", views.model_list, name="model-list"),
    path("upload/", views.version_upload, name="version-upload"),
    path("<int:pk>/", views.model_detail, name="model-detail"),
    path("<int:pk>/compare/", views.version_compare, name="version-compare"),
    path("<int:pk>/versions/<int:version>/", views.version_detail, name="version-detail"),
    path("<int:pk>/versions/<int:version>/archive/", views.version_archive, name="version-archive"),
    path("<int:pk>/versions/<int:version>/delete/", views.version_delete, name="version-delete"),
]
