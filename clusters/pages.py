"""The API's pages that are no resource (docs/api.md, "In a browser"): its
root, and the Swagger UI, which sends a visitor who is not logged in yet to
the login page. The browsable API's renderer is in clusters/browsable.py."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponseBase
from django.urls import reverse
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework import exceptions
from rest_framework.routers import APIRootView


class ApiRoot(APIRootView):
    """The proxmoxer REST API, version 1: a registry of Proxmox VE clusters.

    Every endpoint needs an account: log in here, or send
    `Authorization: Token <key>`. The OpenAPI schema is at `/api/v1/schema`,
    its Swagger UI at `/api/v1/docs`.
    """

    def get_view_name(self) -> str:
        return "proxmoxer API"


class SwaggerUI(SpectacularSwaggerView):
    """The Swagger UI of the API; a browser whose user is not logged in is
    sent to the login page, and back here after it."""

    def handle_exception(self, exc: Exception) -> HttpResponseBase:
        # A browser asks for HTML; a client that asks for JSON (a script,
        # a monitor) gets the 401 in the envelope like every API answer.
        wants_html = "text/html" in self.request.META.get("HTTP_ACCEPT", "")
        not_logged_in = isinstance(
            exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed
        )
        if wants_html and not_logged_in:
            return redirect_to_login(
                self.request.get_full_path(), login_url=reverse("rest_framework:login")
            )
        response: HttpResponseBase = super().handle_exception(exc)
        return response
