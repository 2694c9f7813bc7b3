"""The browsable API's renderer (REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"]):
DRF's, under this service's name, with breadcrumbs that follow the URL from
the API root and name the page the user is on as its title does.

Only rest_framework.renderers is imported here: DRF imports this module
while it loads its own views.
"""

from __future__ import annotations

from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.request import Request


class ProxmoxerBrowsableAPIRenderer(BrowsableAPIRenderer):
    """DRF's browsable API, named proxmoxer."""

    template = "clusters/browsable_api.html"

    def get_breadcrumbs(self, request: Request) -> list[tuple[str, str]]:
        """DRF names each crumb after a view made afresh, which cannot know
        the cluster a page shows; the last crumb is this page, named as its
        title is."""
        crumbs: list[tuple[str, str]] = super().get_breadcrumbs(request)
        view = self.renderer_context.get("view")
        if crumbs and view is not None:
            crumbs[-1] = (view.get_view_name(), crumbs[-1][1])
        return crumbs
