"""Every error under ``/api/`` as one JSON envelope:
``{"code": "BadRequest", "message": "...", "details": null | {...}}``.

``exception_handler`` (set as DRF's EXCEPTION_HANDLER) lets DRF's default
handler do its work first (status, ``WWW-Authenticate``, ``Retry-After``,
transaction rollback), maps the domain's errors to their status, and turns
anything unexpected into a 500 without a stack trace.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from clusters import domain

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
    409: ("Conflict", "Conflict"),
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

# Most specific first: the first class an error is an instance of wins.
_DOMAIN_STATUS: list[tuple[type[domain.ClusterError], int]] = [
    (domain.ValidationFailed, 400),
    (domain.InvalidClusterId, 400),
    (domain.Forbidden, 403),
    (domain.ClusterNotFound, 404),
    (domain.ClusterNameTaken, 409),
    (domain.StaleCluster, 409),
    (domain.CheckOvertaken, 409),
    (domain.ProxmoxAuthenticationFailed, 401),
    (domain.ProxmoxError, 502),
]


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


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = ERRORS[413][1]
    default_code = "payload_too_large"


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


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, domain.ClusterError):
        # A domain error ends the request as DRF's own errors do: a
        # transaction the request opened (ATOMIC_REQUESTS) is rolled back.
        set_rollback()
        for error_class, status_code in _DOMAIN_STATUS:
            if isinstance(exc, error_class):
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
