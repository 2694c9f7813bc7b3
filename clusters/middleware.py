"""Request-level concerns of the API: one access line per request, a bound on
request bodies (and a length for each), and the JSON envelope for errors
Django answers itself."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from urllib.parse import quote

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
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
        access_logger.info(
            "%s %s %s %.1fms user=%s",
            request.method,
            _loggable_path(request),
            response.status_code,
            elapsed_ms,
            _username(request),
        )
        return response


def _username(request: HttpRequest) -> str:
    user = getattr(request, "user", None)
    try:
        return user.get_username() if user is not None and user.is_authenticated else "-"
    except DatabaseError:
        # The session's user could not be read (the database is down): the
        # answer is already a 503; the access line must still be written.
        return "?"


def _browsable_page(response: Response) -> bool:
    """The browsable API's own error page, which shows the envelope; not a
    bare HTML page such as the Swagger UI's "401 Unauthorized"."""
    renderer = getattr(response, "accepted_renderer", None)
    return getattr(renderer, "format", None) == "api"


class ApiErrorEnvelopeMiddleware:
    """Keeps every error under /api/ in the envelope, also those that never
    reach a DRF view: oversized bodies (refused before anything reads them),
    bodies without a length, Django's own 400/404/500 pages, CSRF and
    host-header failures, and a DRF error a view rendered in a format other
    than JSON (the schema view's YAML)."""

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
        if "HTTP_TRANSFER_ENCODING" in request.META and "CONTENT_LENGTH" not in request.META:
            # A WSGI server hands Django a chunked body without a length,
            # which Django then reads as empty; a body is read whole or not
            # at all. (make serve's front end reads chunked bodies and gives
            # them a length: proxmoxer_site/serving.py.)
            return envelope_response(
                411, "Send the request body with a Content-Length (chunked bodies are not read)"
            )

        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if response.status_code >= 400 and "json" not in content_type:
            status = response.status_code
            if isinstance(response, Response):
                if _browsable_page(response):
                    return response
                # DRF's errors are enveloped already, only not as JSON.
                replacement: JsonResponse = JsonResponse(response.data, status=status)
            else:
                replacement = envelope_response(status, default_message(status))
            for header in ("Allow", "Retry-After", "WWW-Authenticate"):
                if header in response:
                    replacement[header] = response[header]
            return replacement
        return response
