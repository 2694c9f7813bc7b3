"""The REST API: a ViewSet whose actions call ClusterService, plus the
probes /health (liveness) and /health/ready (readiness).

DRF's generic views assume a queryset; the registry may live in memory, so
the actions are written out on a plain ViewSet and go through the service.
"""

from __future__ import annotations

import re
from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import (
    action,
    api_view,
    authentication_classes,
    permission_classes,
    throttle_classes,
)
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.utils.urls import remove_query_param, replace_query_param

from clusters.api_errors import DATABASE_RETRY_AFTER_SECONDS, InvalidInput
from clusters.domain import Actor, Cluster, ClusterError
from clusters.readiness import readiness
from clusters.serializers import (
    ClusterListSerializer,
    ClusterSerializer,
    DeregisterSerializer,
    EditClusterSerializer,
    ErrorSerializer,
    HistorySerializer,
    InputSerializer,
    NodeListSerializer,
    PageSerializer,
    RegisterClusterSerializer,
    StatusChangeSerializer,
)
from clusters.wiring import services

_ERRORS = {
    code: OpenApiResponse(ErrorSerializer, description=text)
    for code, text in {
        400: "Invalid request, malformed cluster id, or a target the network policy refuses",
        401: "Not authenticated, or Proxmox refused the credentials",
        403: "The account's role may not do this, or Proxmox refused the token hand-off",
        404: "No cluster with this id",
        406: "A format or media type the API does not speak (?format=, Accept)",
        409: "Name already registered, or the cluster was changed by someone else meanwhile",
        411: "A request body without a Content-Length (chunked) where it cannot be read",
        412: "If-Match names a version that is no longer current",
        413: "Request body larger than API_MAX_BODY_BYTES",
        415: "A request body in a media type the API does not read",
        429: "Too many requests (the API throttle); Retry-After says when to retry",
        502: "Proxmox unreachable, TLS failure, 5xx, or not a Proxmox VE API",
        503: "The database or the shared cache is unreachable or too slow; Retry-After",
    }.items()
}
# Every operation can meet these, whatever it is asked.
_ANY_REQUEST = (400, 401, 403, 406, 429, 503)
_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)
_PAGE = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 1000, default 100"),
    OpenApiParameter("offset", OpenApiTypes.INT, description="default 0"),
]
_IF_MATCH = OpenApiParameter(
    "If-Match",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    description='The ETag of the cluster as read, e.g. "3": refused (412) if it changed since',
)
# An ETag as this API issues it: the configuration's version, quoted.
_ETAG_RE = re.compile(r'^"(\d{1,18})"$')


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: _ERRORS[code] for code in sorted({*_ANY_REQUEST, *codes})}


def etag(cluster: Cluster) -> str:
    """The cluster's entity tag: its configuration's version. Health fields
    are observations and may change under the same tag."""
    return f'"{cluster.version}"'


def expected_version(request: Request) -> int | None:
    """The version an ``If-Match`` header requires; None without one (or
    with ``*``, which any existing cluster matches)."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    match = _ETAG_RE.match(header.strip())
    if match is None:
        message = 'If-Match must be the ETag of the cluster as read, like "3" (or *)'
        raise InvalidInput(message, {"If-Match": [message]})
    return int(match.group(1))


def actor_for(request: Request) -> Actor:
    """The registry account behind a request, as the use cases see it."""
    user = request.user
    return Actor(
        username=user.get_username(),
        is_superuser=user.is_superuser,
        groups=frozenset(user.groups.values_list("name", flat=True)),
        source_ip=request.META.get("REMOTE_ADDR"),
    )


@method_decorator(sensitive_post_parameters("password", "token_secret"), name="dispatch")
class ClusterViewSet(viewsets.ViewSet):
    """Proxmox VE clusters registered with this service.

    POST registers a cluster after proving its credentials against the
    cluster's own API; GET lists them by name. On one cluster, PATCH edits
    what was registered (only the fields given), proving any change of how
    the cluster is reached before it is stored.
    """

    lookup_value_regex = "[^/]+"

    def get_serializer(self, *args: Any, **kwargs: Any) -> InputSerializer:
        """The forms of the browsable API: register on the list, edit (with
        the current values, secrets blank) on a cluster."""
        kwargs.setdefault("context", {"request": self.request, "view": self})
        if self.request.method == "PATCH":
            if kwargs.get("instance") is None and "pk" in self.kwargs:
                kwargs["instance"] = self._current_values(self.kwargs["pk"])
            return EditClusterSerializer(*args, **kwargs)
        return RegisterClusterSerializer(*args, **kwargs)

    def _current_values(self, pk: str) -> dict[str, Any] | None:
        """The edit form's values; None (a blank form, which the page of an
        error does not show anyway) where the cluster cannot be read."""
        try:
            cluster = services().clusters.get_cluster(pk, actor=actor_for(self.request))
        except ClusterError:
            return None
        return EditClusterSerializer.current_values(cluster)

    def get_view_name(self) -> str:
        return "Cluster" if self.detail else "Clusters"

    @extend_schema(responses={200: ClusterListSerializer, **_errors()})
    def list(self, request: Request) -> Response:
        listing = services().clusters.list_clusters(actor=actor_for(request))
        return Response(dict(ClusterListSerializer(listing).data))

    @extend_schema(
        request=RegisterClusterSerializer,
        responses={201: ClusterSerializer, **_errors(409, 411, 413, 415, 502)},
    )
    def create(self, request: Request) -> Response:
        registration = RegisterClusterSerializer(data=request.data).to_request()
        cluster = services().clusters.register(registration, actor=actor_for(request))
        location = reverse("cluster-detail", kwargs={"pk": cluster.id}, request=request)
        return _cluster_response(
            cluster, status=status.HTTP_201_CREATED, headers={"Location": location}
        )

    @extend_schema(parameters=[_ID], responses={200: ClusterSerializer, **_errors(404)})
    def retrieve(self, request: Request, pk: str) -> Response:
        cluster = services().clusters.get_cluster(pk, actor=actor_for(request))
        return _cluster_response(cluster)

    @extend_schema(
        parameters=[_ID, _IF_MATCH],
        request=EditClusterSerializer,
        responses={200: ClusterSerializer, **_errors(400, 401, 403, 404, 409, 412, 502)},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        """Edit the cluster: only the fields given change. A change of how
        it is reached (endpoint, credentials, verify_tls, fingerprint) is
        proven against Proxmox before it is stored."""
        version = expected_version(request)
        edit = EditClusterSerializer(data=request.data, partial=True).to_request()
        cluster = services().clusters.edit(
            pk, edit, actor=actor_for(request), expected_version=version
        )
        return _cluster_response(cluster)

    @extend_schema(
        parameters=[_ID],
        request=DeregisterSerializer,
        responses={204: None, **_errors(400, 401, 404)},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        """Deregister the cluster. An API token the registry made on it is
        deleted there too, best effort; the optional body's username and
        password let it (PVE does not let a token delete itself)."""
        owner = DeregisterSerializer(data=request.data or {}).to_credentials()
        services().clusters.deregister(pk, actor=actor_for(request), token_owner=owner)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[_ID], request=None, responses={200: ClusterSerializer, **_errors(404, 409)}
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str) -> Response:
        """Check the cluster again with its stored credentials."""
        cluster = services().checks.refresh(pk, actor=actor_for(request))
        return _cluster_response(cluster)

    @extend_schema(parameters=[_ID], responses={200: NodeListSerializer, **_errors(404)})
    @action(detail=True, methods=["get"])
    def nodes(self, request: Request, pk: str) -> Response:
        """The cluster's nodes as its last successful check read them."""
        node_list = services().checks.nodes(pk, actor=actor_for(request))
        return Response(dict(NodeListSerializer(node_list).data))

    @extend_schema(parameters=[_ID, *_PAGE], responses={200: HistorySerializer, **_errors(404)})
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str) -> Response:
        """Every change of the cluster's status, newest first."""
        page = PageSerializer(data=request.query_params).validated_or_raise()
        limit, offset = page["limit"], page["offset"]
        history = services().checks.history(
            pk, actor=actor_for(request), limit=limit, offset=offset
        )
        return Response(
            {
                "events": StatusChangeSerializer(history.events, many=True).data,
                "total": history.total,
                **page_links(request, total=history.total, limit=limit, offset=offset),
            }
        )


def page_links(request: Request, *, total: int, limit: int, offset: int) -> dict[str, str | None]:
    """``next`` and ``previous`` of a limit/offset page: this request's URL
    with the offset moved, or None at either end."""
    url = request.build_absolute_uri()
    following = (
        replace_query_param(url, "offset", offset + limit) if offset + limit < total else None
    )
    if offset <= 0:
        preceding = None
    elif offset - limit <= 0:
        preceding = remove_query_param(url, "offset")
    else:
        preceding = replace_query_param(url, "offset", offset - limit)
    return {"next": following, "previous": preceding}


def _cluster_response(cluster: Cluster, **kwargs: Any) -> Response:
    """The cluster, with its ETag. A plain dict: the browsable API would
    render a serializer attached to the data as the next form."""
    headers = {"ETag": etag(cluster), **kwargs.pop("headers", {})}
    return Response(dict(ClusterSerializer(cluster).data), headers=headers, **kwargs)


@extend_schema(
    responses={
        200: inline_serializer("Health", {"status": serializers.CharField()}),
        406: _ERRORS[406],
    },
    auth=[],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request: Request) -> Response:
    """Liveness of this service (not of the registered clusters)."""
    return Response({"status": "healthy"})


@extend_schema(
    responses={
        200: inline_serializer(
            "Readiness",
            {"status": serializers.CharField(), "checks": serializers.DictField()},
        ),
        503: inline_serializer(
            "NotReady",
            {"status": serializers.CharField(), "checks": serializers.DictField()},
        ),
        406: _ERRORS[406],
    },
    auth=[],
)
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def health_ready(request: Request) -> Response:
    """Readiness of this service: 200 when the database (and the shared
    cache, and Celery's broker, where configured) answer; 503 otherwise."""
    ready, checks = readiness()
    if ready:
        return Response({"status": "ready", "checks": checks})
    return Response(
        {"status": "not ready", "checks": checks},
        status=503,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def api_not_found(request: Request, *args: Any, **kwargs: Any) -> Response:
    raise NotFound(f"No API endpoint at {request.path}")
