from django.urls import path

from registry.api import views

urlpatterns = [
    path("models/", views.ModelListView.as_view(), name="model-list"),
    path("models/<str:model>/", views.ModelDetailView.as_view(), name="model-detail"),
    path("models/<str:model>/tags/", views.ModelTagView.as_view(), name="model-tags"),
    path("models/<str:model>/aliases/<str:alias>/", views.AliasView.as_view(), name="model-alias"),
    path("models/<str:model>/versions/", views.VersionListView.as_view(), name="model-version-list"),
    path("models/<str:model>/versions/<int:version>/", views.VersionDetailView.as_view(), name="model-version-detail"),
    path("models/<str:model>/versions/<int:version>/tags/", views.VersionTagView.as_view(), name="model-version-tags"),
    path("models/<str:model>/versions/<int:version>/artifact/", views.ArtifactView.as_view(), name="model-version-artifact"),
    path("models/<str:model>/versions/<int:version>/files/", views.ArtifactFilesView.as_view(), name="model-version-files"),
    path("compare/", views.CompareView.as_view(), name="version-compare"),
    path("imports/", views.ImportView.as_view(), name="model-import"),
]
