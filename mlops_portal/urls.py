from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from mlops_portal.api_views import ApiNotFoundView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("api/v1/", include("mlops_portal.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", login_required(SpectacularSwaggerView.as_view(url_name="api-schema")), name="api-docs"),
    # After every API route: the rest of /api/ gets a JSON 404, whatever DEBUG is.
    re_path(r"^api/", ApiNotFoundView.as_view(), name="api-not-found"),
    path("audit/", include("audit.urls")),
    path("", include("deployments.urls")),
    path("models/", include("registry.urls")),
]

# Used for URLs that match no route only when DEBUG is off. With DEBUG on,
# Django returns its technical 404 page for those instead.
handler404 = "mlops_portal.views.page_not_found"
