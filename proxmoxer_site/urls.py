"""Top-level routes: the API under /api/v1/ (with its OpenAPI schema and
Swagger UI), /health and /health/ready, /metrics, login for the browsable
API, the admin; anything else under /api/ is a JSON 404."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.utils import extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView

from clusters.metrics import metrics_view
from clusters.pages import SwaggerUI
from clusters.urls import api_root
from clusters.views import api_not_found, health, health_ready

# The schema describes the API, not itself.
SchemaView = extend_schema_view(get=extend_schema(exclude=True))(SpectacularAPIView)

urlpatterns = [
    re_path(r"^health/?$", health, name="health"),
    re_path(r"^health/ready/?$", health_ready, name="health-ready"),
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
    re_path(r"^api/v1/schema/?$", SchemaView.as_view(), name="schema"),
    re_path(r"^api/v1/docs/?$", SwaggerUI.as_view(url_name="schema"), name="docs"),
    path("api/v1/", include("clusters.urls")),
    re_path(r"^api/v1$", api_root),
    path("api-auth/", include("rest_framework.urls")),
    re_path(r"^api/", api_not_found),
    path("admin/", admin.site.urls),
]

handler500 = "clusters.api_errors.server_error"
