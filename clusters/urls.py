"""Routes of /api/v1/: every path answers with and without a trailing slash."""

from rest_framework.routers import DefaultRouter

from clusters.views import ClusterViewSet


class OptionalSlashRouter(DefaultRouter):
    """No APPEND_SLASH redirects: a redirect would turn a POST into a GET in
    many clients, so both spellings are routes of their own.

    No format suffixes (``/clusters.json``) either: JSON is the API's one
    format, and a suffix route read ``/clusters/0.5`` as the id ``0`` in the
    format ``5``. An id is anything up to the next slash, and the service
    says whether it is one."""

    include_format_suffixes = False

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("clusters", ClusterViewSet, basename="cluster")

urlpatterns = router.urls
