"""The REST API: a ViewSet whose actions call ClusterService, plus /health.

DRF's generic views assume a queryset; the registry may live in memory, so
the actions are written out on a plain ViewSet and go through the service.
"""

from __future__ import annotations

from typing import Any

from django.urls import NoReverseMatch
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

from clusters.access import actor_for
from clusters.domain import AuditAction, Permission, may
from clusters.serializers import (
    AuditEventListSerializer,
    AuditEventSerializer,
    AuditQuerySerializer,
    ClusterListSerializer,
    ClusterSerializer,
    ErrorSerializer,
    RegisterClusterSerializer,
)
from clusters.wiring import services

_ERRORS = {
    code: OpenApiResponse(ErrorSerializer, description=text)
    for code, text in {
        400: "Invalid request or malformed cluster id",
        401: "Not authenticated, or Proxmox refused the credentials",
        403: "The account's role does not allow this",
        404: "No cluster with this id",
        409: "Name already registered",
        502: "Proxmox unreachable, TLS failure, 5xx, or not a PVE API",
    }.items()
}
_READING_METHODS = {"get", "head", "options"}
_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: _ERRORS[code] for code in codes}


@method_decorator(sensitive_post_parameters("password", "token_secret"), name="dispatch")
class ClusterViewSet(viewsets.ViewSet):
    """Proxmox VE clusters registered with this service.

    POST registers a cluster after proving its credentials against the
    cluster's own API; GET lists them by name.
    """

    lookup_value_regex = "[^/.]+"
    # What a failure of each action is recorded as (clusters.access.record_refusal).
    audited_actions = {
        "create": AuditAction.CLUSTER_REGISTER,
        "update": AuditAction.CLUSTER_EDIT,
        "partial_update": AuditAction.CLUSTER_EDIT,
        "refresh": AuditAction.CLUSTER_REFRESH,
        "destroy": AuditAction.CLUSTER_DEREGISTER,
    }

    def get_extra_action_url_map(self) -> dict[str, str]:
        """The browsable API's "Extra Actions" menu, without the actions that
        change something for a user who may not change anything."""
        if self.detail is None:
            return {}
        may_change = may(actor_for(self.request), Permission.OPERATE)
        urls = {}
        for extra in self.get_extra_actions():
            if extra.detail != self.detail:
                continue
            if not may_change and not set(extra.mapping) <= _READING_METHODS:
                continue
            try:
                url = reverse(
                    f"{self.basename}-{extra.url_name}",
                    self.args,
                    self.kwargs,
                    request=self.request,
                )
            except NoReverseMatch:
                continue
            urls[str(extra.kwargs.get("name", extra.url_name))] = url
        return urls

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


class AuditEventViewSet(viewsets.ViewSet):
    """The audit log: who did what, and what was refused, newest first
    (superusers only)."""

    required_permission = Permission.AUDIT

    def get_view_name(self) -> str:
        return "Audit events"

    @extend_schema(
        parameters=[AuditQuerySerializer],
        responses={200: AuditEventListSerializer, **_errors(400, 401, 403)},
    )
    def list(self, request: Request) -> Response:
        query = AuditQuerySerializer(data=request.query_params).to_query()
        page = services().audit.events(query, actor=actor_for(request))
        url = request.build_absolute_uri()
        following = query.offset + len(page.events)
        previous = None
        if query.offset > 0:
            previous_offset = max(query.offset - query.limit, 0)
            previous = (
                replace_query_param(url, "offset", previous_offset)
                if previous_offset
                else remove_query_param(url, "offset")
            )
        return Response(
            {
                "events": AuditEventSerializer(page.events, many=True).data,
                "total": page.total,
                "next": replace_query_param(url, "offset", following)
                if following < page.total
                else None,
                "previous": previous,
            }
        )


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
