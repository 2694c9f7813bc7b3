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
from rest_framework.views import exception_handler as drf_exception_handler

from clusters import domain

logger = logging.getLogger("clusters.api")

# docs/product-contract.md §4 names the codes; others follow the same PascalCase rule.
_CODES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
}

# Most specific first: the first class an error is an instance of wins.
_DOMAIN_STATUS: list[tuple[type[domain.ClusterError], int]] = [
    (domain.ValidationFailed, 400),
    (domain.InvalidClusterId, 400),
    (domain.ClusterNotFound, 404),
    (domain.ClusterNameTaken, 409),
    (domain.ProxmoxAuthenticationFailed, 401),
    (domain.ProxmoxError, 502),
]

INTERNAL_ERROR_MESSAGE = "The server failed to handle this request; the error is in its log"


def error_code(status_code: int) -> str:
    try:
        return _CODES[status_code]
    except KeyError:
        phrase = HTTPStatus(status_code).phrase if status_code in HTTPStatus else "Error"
        return "".join(word.capitalize() for word in phrase.replace("-", " ").split())


def envelope(status_code: int, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": error_code(status_code), "message": message, "details": details}


def envelope_response(status_code: int, message: str, details: Any = None) -> JsonResponse:
    """For the places outside DRF views (middleware, the 404/500 handlers)."""
    return JsonResponse(envelope(status_code, message, details), status=status_code)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body too large"
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


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    if isinstance(exc, domain.ClusterError):
        for error_class, status_code in _DOMAIN_STATUS:
            if isinstance(exc, error_class):
                return Response(envelope(status_code, exc.message, exc.details), status=status_code)

    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        message, details = _api_exception_message(exc)
        response.data = envelope(response.status_code, message, details)
        return response

    view = context.get("view")
    logger.exception("Unhandled error in %s", type(view).__name__ if view else "API")
    return Response(envelope(500, INTERNAL_ERROR_MESSAGE), status=500)
