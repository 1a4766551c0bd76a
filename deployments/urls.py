from django.urls import path

from deployments import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("endpoints/", views.endpoint_list, name="endpoint-list"),
    path("endpoints/<slug:name>/", views.endpoint_detail, name="endpoint-detail"),
    path("releases/", views.release_list, name="release-list"),
    path("releases/<int:release_id>/", views.release_detail, name="release-detail"),
    path("releases/<int:release_id>/status/", views.release_status, name="release-status"),
    path("releases/<int:release_id>/rollback/", views.release_rollback, name="release-rollback"),
]
