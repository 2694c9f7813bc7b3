"""Every error under ``/api/`` as one JSON envelope:
``{"code": "BadRequest", "message": "...", "details": null | {...}}``.

``exception_handler`` (set as DRF's EXCEPTION_HANDLER) lets DRF's default
handler do its work first (status, ``WWW-Authenticate``, ``Retry-After``,
transaction rollback), maps the domain's errors to their status, turns what
a request's shape can make Django raise into a 4xx, a database that cannot
be reached or answers too slowly into a 503 with ``Retry-After``, and
anything unexpected into a 500 without a stack trace. ``server_error``
answers the same for errors outside DRF's views (Django's handler500).
"""

from __future__ import annotations

import logging
import sys
from http import HTTPStatus
from typing import Any

import redis
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from clusters import domain
from clusters.access import record_refusal

logger = logging.getLogger("clusters.api")

# The one table of error codes and default messages (docs/product-contract.md
# §4 and §13 name the codes): the exception handler, the middleware and the
# catch-all view all answer from it.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "Bad request"),
    401: ("Unauthorized", "Authentication credentials were not provided"),
    403: ("Forbidden", "Forbidden"),
    404: ("NotFound", "Not found"),
    405: ("MethodNotAllowed", "Method not allowed"),
    406: ("NotAcceptable", "Not acceptable"),
    408: ("RequestTimeout", "The request body did not arrive in time"),
    409: ("Conflict", "Conflict"),
    411: ("LengthRequired", "A request body needs a Content-Length"),
    412: ("PreconditionFailed", "Precondition failed"),
    413: ("PayloadTooLarge", "Request body too large"),
    415: ("UnsupportedMediaType", "Unsupported media type"),
    429: ("TooManyRequests", "Too many requests"),
    500: (
        "InternalServerError",
        "The server failed to handle this request; the error is in its log",
    ),
    502: ("BadGateway", "Bad gateway"),
    503: ("ServiceUnavailable", "Service unavailable"),
}
INTERNAL_ERROR_MESSAGE = ERRORS[500][1]

# How long a client should wait before trying again when the database is
# unreachable or too slow: about one connect timeout.
DATABASE_RETRY_AFTER_SECONDS = 5
DATABASE_UNAVAILABLE_MESSAGE = (
    "The database is unreachable or too slow; the service recovers by itself when it answers again"
)
# What the database driver raises when it cannot connect, lost the
# connection, or cancelled a statement at the statement timeout.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
# What the shared cache of the throttles (CACHE_URL) raises when it does not answer.
CACHE_UNAVAILABLE_ERRORS = (redis.ConnectionError, redis.TimeoutError)
CACHE_UNAVAILABLE_MESSAGE = (
    "The shared cache (CACHE_URL) is unreachable; the service recovers by itself when it "
    "answers again"
)

# Most specific first: the first class an error is an instance of wins.
_DOMAIN_STATUS: list[tuple[type[domain.ClusterError], int]] = [
    (domain.ValidationFailed, 400),
    (domain.InvalidClusterId, 400),
    (domain.NetworkPolicyRefused, 400),
    (domain.Forbidden, 403),
    (domain.TokenHandOffRefused, 403),
    (domain.ClusterNotFound, 404),
    (domain.ClusterNameTaken, 409),
    (domain.ClusterAlreadyRegistered, 409),
    (domain.StaleCluster, 409),
    (domain.CheckOvertaken, 409),
    (domain.PreconditionFailed, 412),
    (domain.ProxmoxAuthenticationFailed, 401),
    (domain.ProxmoxError, 502),
]


def status_for(error: domain.ClusterError) -> int | None:
    """The HTTP status that answers a domain error (None: none does, it is
    a crash); the dashboard records its failures with the same numbers."""
    for error_class, status_code in _DOMAIN_STATUS:
        if isinstance(error, error_class):
            return status_code
    return None


def error_code(status_code: int) -> str:
    if status_code in ERRORS:
        return ERRORS[status_code][0]
    phrase = HTTPStatus(status_code).phrase if status_code in HTTPStatus else "Error"
    return "".join(word.capitalize() for word in phrase.replace("-", " ").split())


def default_message(status_code: int) -> str:
    if status_code in ERRORS:
        return ERRORS[status_code][1]
    return HTTPStatus(status_code).phrase if status_code in HTTPStatus else "Error"


def envelope(status_code: int, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": error_code(status_code), "message": message, "details": details}


def envelope_response(status_code: int, message: str, details: Any = None) -> JsonResponse:
    """For the places outside DRF views (middleware, the 404/500 handlers)."""
    return JsonResponse(envelope(status_code, message, details), status=status_code)


def database_unavailable_response(error: BaseException) -> JsonResponse:
    """503 + Retry-After, for the places outside DRF views."""
    _log_database_unavailable(error)
    response = envelope_response(503, DATABASE_UNAVAILABLE_MESSAGE, _retry_details())
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


def _retry_details() -> dict[str, int]:
    return {"retry_after": DATABASE_RETRY_AFTER_SECONDS}


def _log_database_unavailable(error: BaseException) -> None:
    # The driver's first line says what failed (refused, timed out,
    # cancelled) and names host and port, never a password.
    lines = str(error).strip().splitlines()
    logger.error(
        "Database unavailable, error=%s: %s", type(error).__name__, lines[0] if lines else "?"
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's handler500: an unreachable database is 503 here too (a
    session saved after the view, a login form); anything else is the
    envelope's 500 (the middleware re-wraps it outside /api/ as well)."""
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_UNAVAILABLE_ERRORS):
        return database_unavailable_response(error)
    return envelope_response(500, INTERNAL_ERROR_MESSAGE)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = ERRORS[413][1]
    default_code = "payload_too_large"


class RequestRefused(exceptions.APIException):
    """A request whose shape Django refuses (too many fields, ...)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = ERRORS[400][1]
    default_code = "bad_request"


class InvalidInput(exceptions.ValidationError):
    """A serializer's field errors, with one sentence that sums them up."""

    def __init__(self, message: str, errors: Any) -> None:
        super().__init__(errors)
        self.message = message


def _first_message(detail: Any) -> str:
    while isinstance(detail, (list, dict)) and detail:
        detail = next(iter(detail.values())) if isinstance(detail, dict) else detail[0]
    return str(detail) if detail else "Invalid request"


def _api_exception_message(exc: exceptions.APIException) -> tuple[str, Any]:
    if isinstance(exc, InvalidInput):
        return exc.message, exc.detail
    if isinstance(exc, exceptions.ValidationError):
        return _first_message(exc.detail), exc.detail
    if isinstance(exc, exceptions.ParseError):
        return f"Malformed request body: {exc.detail}", None
    detail = exc.detail
    if isinstance(detail, (list, dict)):
        return _first_message(detail), detail
    return str(detail), None


def _domain_details(exc: domain.ClusterError) -> Any:
    if isinstance(exc, domain.ValidationFailed) and exc.details:
        # The domain's key for errors about the request as a whole is DRF's
        # non_field_errors here, as for the serializers' own errors.
        return {
            (api_settings.NON_FIELD_ERRORS_KEY if key == exc.WHOLE_REQUEST else key): value
            for key, value in exc.details.items()
        }
    return exc.details


def _as_api_exception(exc: Exception) -> Exception:
    """What Django (or the interpreter) raises about a request's shape, as
    the DRF exception that answers it; anything else unchanged."""
    if isinstance(exc, Http404):
        return exceptions.NotFound()
    if isinstance(exc, PermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, (SuspiciousOperation, BadRequest)):
        # TooManyFieldsSent (query string or form), TooManyFilesSent...:
        # Django's own messages name the limit and quote nothing.
        return RequestRefused(str(exc) or ERRORS[400][1])
    if isinstance(exc, RecursionError):
        return exceptions.ParseError("the request body is nested too deeply")
    return exc


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    response = _error_response(exc, context)
    # Refusals (403) and failed cluster actions go to the audit log, with
    # the status just decided (docs/product-contract.md §13) — not when the
    # database, where the log is kept, is what failed.
    request = context.get("request")
    if request is not None and not isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        record_refusal(request, context.get("view"), response.status_code)
    return response


def _error_response(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        set_rollback()
        _log_database_unavailable(exc)
        return Response(
            envelope(503, DATABASE_UNAVAILABLE_MESSAGE, _retry_details()),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, CACHE_UNAVAILABLE_ERRORS):
        logger.error("Cache unavailable, error=%s", type(exc).__name__)
        return Response(
            envelope(503, CACHE_UNAVAILABLE_MESSAGE, _retry_details()),
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    exc = _as_api_exception(exc)
    if isinstance(exc, domain.ClusterError):
        # A domain error ends the request as DRF's own errors do: a
        # transaction the request opened (ATOMIC_REQUESTS) is rolled back.
        set_rollback()
        status_code = status_for(exc)
        if status_code is not None:
            body = envelope(status_code, exc.message, _domain_details(exc))
            return Response(body, status=status_code)

    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        message, details = _api_exception_message(exc)
        response.data = envelope(response.status_code, message, details)
        return response

    view = context.get("view")
    logger.exception("Unhandled error in %s", type(view).__name__ if view else "API")
    set_rollback()
    return Response(envelope(500, INTERNAL_ERROR_MESSAGE), status=500)
