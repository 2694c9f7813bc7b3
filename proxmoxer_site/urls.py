"""Top-level routes: the API under /api/v1/, /health, login for the
browsable API, the admin; anything else under /api/ is a JSON 404."""

from django.contrib import admin
from django.urls import include, path, re_path

from clusters.urls import router
from clusters.views import api_not_found, health

urlpatterns = [
    re_path(r"^health/?$", health, name="health"),
    path("api/v1/", include("clusters.urls")),
    re_path(r"^api/v1$", router.get_api_root_view(api_urls=router.urls)),
    path("api-auth/", include("rest_framework.urls")),
    re_path(r"^api/", api_not_found),
    path("admin/", admin.site.urls),
]
