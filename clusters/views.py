"""The REST API: a ViewSet whose actions call ClusterService, plus /health.

DRF's generic views assume a queryset; the registry may live in memory, so
the actions are written out on a plain ViewSet and go through the service.
"""

from __future__ import annotations

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

from clusters.domain import Actor
from clusters.serializers import (
    ClusterListSerializer,
    ClusterSerializer,
    ErrorSerializer,
    HistorySerializer,
    NodeListSerializer,
    PageSerializer,
    RegisterClusterSerializer,
    StatusChangeSerializer,
)
from clusters.wiring import services

_ERRORS = {
    code: OpenApiResponse(ErrorSerializer, description=text)
    for code, text in {
        400: "Invalid request or malformed cluster id",
        401: "Not authenticated, or Proxmox refused the credentials",
        404: "No cluster with this id",
        409: "Name already registered",
        502: "Proxmox unreachable, TLS failure, 5xx, or not a PVE API",
    }.items()
}
_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)
_PAGE = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 1000, default 100"),
    OpenApiParameter("offset", OpenApiTypes.INT, description="default 0"),
]


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: _ERRORS[code] for code in codes}


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
    cluster's own API; GET lists them by name.
    """

    lookup_value_regex = "[^/.]+"

    def get_serializer(self, *args: Any, **kwargs: Any) -> RegisterClusterSerializer:
        """The register form of the browsable API."""
        kwargs.setdefault("context", {"request": self.request, "view": self})
        return RegisterClusterSerializer(*args, **kwargs)

    def get_view_name(self) -> str:
        return "Cluster" if self.detail else "Clusters"

    @extend_schema(responses={200: ClusterListSerializer, **_errors(401)})
    def list(self, request: Request) -> Response:
        listing = services().clusters.list_clusters(actor=actor_for(request))
        return Response(dict(ClusterListSerializer(listing).data))

    @extend_schema(
        request=RegisterClusterSerializer,
        responses={201: ClusterSerializer, **_errors(400, 401, 409, 502)},
    )
    def create(self, request: Request) -> Response:
        registration = RegisterClusterSerializer(data=request.data).to_request()
        cluster = services().clusters.register(registration, actor=actor_for(request))
        location = reverse("cluster-detail", kwargs={"pk": cluster.id}, request=request)
        # A plain dict: the browsable API would render a serializer attached
        # to the data as the next form.
        body = dict(ClusterSerializer(cluster).data)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    @extend_schema(parameters=[_ID], responses={200: ClusterSerializer, **_errors(400, 401, 404)})
    def retrieve(self, request: Request, pk: str) -> Response:
        cluster = services().clusters.get_cluster(pk, actor=actor_for(request))
        return Response(dict(ClusterSerializer(cluster).data))

    @extend_schema(parameters=[_ID], responses={204: None, **_errors(400, 401, 404)})
    def destroy(self, request: Request, pk: str) -> Response:
        services().clusters.deregister(pk, actor=actor_for(request))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=[_ID], request=None, responses={200: ClusterSerializer, **_errors(400, 401, 404)}
    )
    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str) -> Response:
        """Check the cluster again with its stored credentials."""
        cluster = services().checks.refresh(pk, actor=actor_for(request))
        return Response(dict(ClusterSerializer(cluster).data))

    @extend_schema(parameters=[_ID], responses={200: NodeListSerializer, **_errors(400, 401, 404)})
    @action(detail=True, methods=["get"])
    def nodes(self, request: Request, pk: str) -> Response:
        """The cluster's nodes as its last successful check read them."""
        node_list = services().checks.nodes(pk, actor=actor_for(request))
        return Response(dict(NodeListSerializer(node_list).data))

    @extend_schema(
        parameters=[_ID, *_PAGE], responses={200: HistorySerializer, **_errors(400, 401, 404)}
    )
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


@extend_schema(responses=inline_serializer("Health", {"status": serializers.CharField()}), auth=[])
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request: Request) -> Response:
    """Liveness of this service (not of the registered clusters)."""
    return Response({"status": "healthy"})


@extend_schema(exclude=True)
@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def api_not_found(request: Request, *args: Any, **kwargs: Any) -> Response:
    raise NotFound(f"No API endpoint at {request.path}")
