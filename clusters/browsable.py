"""The browsable API's renderer: DRF's, named proxmoxer, with breadcrumbs
that name the page as its title does, and an HTML form for PATCH.

DRF renders HTML forms for POST and PUT only; for PATCH it offers just the
raw-data box. The registry has no PUT (a cluster is edited, never replaced),
so the detail page would offer no form a person can fill in. This renderer
adds one, filled with the current values from the view's serializer
(secrets blank), beside the raw-data box, in
clusters/templates/clusters/browsable_api.html.

Only DRF's renderers are imported here: DRF imports this module while it
loads its own views (the API root and the Swagger UI are in
clusters/pages.py).
"""

from __future__ import annotations

from typing import Any

from rest_framework import renderers
from rest_framework.request import Request


class BrowsableAPIRenderer(renderers.BrowsableAPIRenderer):
    template = "clusters/browsable_api.html"

    def get_context(
        self, data: Any, accepted_media_type: str | None, renderer_context: dict[str, Any]
    ) -> dict[str, Any]:
        context = super().get_context(data, accepted_media_type, renderer_context)
        view, request = renderer_context["view"], renderer_context["request"]
        patch_form = self.get_rendered_html_form(data, view, "PATCH", request)
        if patch_form and "PUT" not in view.allowed_methods:
            # The template shows the raw-data box as the PATCH form's second
            # tab, instead of on its own.
            context["patch_form"] = patch_form
            context["raw_data_patch_tab"] = context["raw_data_patch_form"]
            context["raw_data_patch_form"] = None
            context["raw_data_put_or_patch_form"] = None
        return context

    def get_breadcrumbs(self, request: Request) -> list[tuple[str, str]]:
        """DRF names each crumb after a view made afresh, which cannot know
        the cluster a page shows; the last crumb is this page, named as its
        title is."""
        crumbs: list[tuple[str, str]] = super().get_breadcrumbs(request)
        view = self.renderer_context.get("view")
        if crumbs and view is not None:
            crumbs[-1] = (view.get_view_name(), crumbs[-1][1])
        return crumbs
