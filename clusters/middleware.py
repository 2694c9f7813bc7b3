"""Request-level concerns of the API: one access line per request, a bound on
request bodies, and the JSON envelope for errors Django answers itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import quote

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response

from clusters.api_errors import default_message, envelope_response

access_logger = logging.getLogger("proxmoxer.access")

API_PREFIX = "/api/"


def _loggable_path(request: HttpRequest) -> str:
    # Re-quoted so a %0A in the URL cannot forge a log line; no query string,
    # which is where a careless client would put a secret.
    return quote(request.path, safe="/:@!$&'()*+,;=-._~")


class AccessLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed_ms = (time.perf_counter() - started) * 1000
        user = getattr(request, "user", None)
        username = user.get_username() if user is not None and user.is_authenticated else "-"
        access_logger.info(
            "%s %s %s %.1fms user=%s",
            request.method,
            _loggable_path(request),
            response.status_code,
            elapsed_ms,
            username,
        )
        return response


def _enveloped_by_drf(response: HttpResponse) -> bool:
    """DRF's responses carry the envelope already, as JSON or inside the
    browsable API's page; not when a view renders bare HTML (the Swagger
    UI's TemplateHTMLRenderer shows only "401 Unauthorized")."""
    if not isinstance(response, Response):
        return False
    renderer = getattr(response, "accepted_renderer", None)
    return getattr(renderer, "format", None) != "html"


class ApiErrorEnvelopeMiddleware:
    """Keeps every error under /api/ in the envelope, also those that never
    reach a DRF view: oversized bodies (refused before anything reads them),
    Django's own 400/404/500 pages, CSRF and host-header failures."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        limit = settings.API_MAX_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit():
            return envelope_response(400, "Content-Length must be a number")
        if int(declared) > limit:
            return envelope_response(413, f"Request body too large: the limit is {limit} bytes")

        response = self.get_response(request)
        if (
            response.status_code >= 400
            and not _enveloped_by_drf(response)
            and "json" not in response.get("Content-Type", "")
        ):
            status = response.status_code
            data = getattr(response, "data", None)
            if isinstance(data, dict) and set(data) == {"code", "message", "details"}:
                # Rendered as a bare HTML page (the Swagger UI's renderer):
                # the envelope the exception handler made, as JSON.
                replacement = envelope_response(status, data["message"], data["details"])
            else:
                replacement = envelope_response(status, default_message(status))
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response
