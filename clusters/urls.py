"""Routes of /api/v1/: every path answers with and without a trailing slash."""

from django.urls import re_path
from rest_framework.routers import DefaultRouter

from clusters.pages import ApiRoot
from clusters.views import AuditEventViewSet, ClusterViewSet


class OptionalSlashRouter(DefaultRouter):
    """No APPEND_SLASH redirects: a redirect would turn a POST into a GET in
    many clients, so both spellings are routes of their own.

    No format suffixes (``/clusters.json``) either: JSON is the API's one
    format, and a suffix route read ``/clusters/0.5`` as the id ``0`` in the
    format ``5``. An id is anything up to the next slash, and the service
    says whether it is one."""

    include_format_suffixes = False

    APIRootView = ApiRoot
    # The root is routed below, one view for "/api/v1" and "/api/v1/": two
    # would each be a breadcrumb of their own.
    include_root_view = False

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("clusters", ClusterViewSet, basename="cluster")
router.register("audit-events", AuditEventViewSet, basename="audit-event")

api_root = router.get_api_root_view(api_urls=router.urls)

urlpatterns = [re_path(r"^$", api_root, name="api-root"), *router.urls]
