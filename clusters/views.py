"""The REST API: a ViewSet whose actions call ClusterService, plus /health.

DRF's generic views assume a queryset; the registry may live in memory, so
the actions are written out on a plain ViewSet and go through the service.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connections, router
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.utils.encoding import smart_str
from django.views.decorators.csrf import csrf_exempt
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
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.utils import formatting

from clusters.api_errors import envelope_response
from clusters.domain import DEFAULT_LIMIT, MAX_LIMIT, Actor, ClusterStatus
from clusters.serializers import (
    ClusterListSerializer,
    ClusterSerializer,
    ErrorSerializer,
    RegisterClusterSerializer,
    cluster_page,
    cluster_query,
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
_LIST_PARAMETERS = [
    OpenApiParameter(
        "limit", int, description=f"Clusters per page, 1-{MAX_LIMIT} (default {DEFAULT_LIMIT})"
    ),
    OpenApiParameter("offset", int, description="Matches to skip (default 0)"),
    OpenApiParameter(
        "status",
        str,
        many=True,
        explode=True,
        enum=[choice.value for choice in ClusterStatus],
        description="Only these statuses; repeat it or give a comma list",
    ),
    OpenApiParameter(
        "search", str, description="Case-insensitive part of the name or the API endpoint"
    ),
    OpenApiParameter("name", str, description="Exactly this name, compared case-insensitively"),
]


def _errors(*codes: int) -> dict[int, OpenApiResponse]:
    return {code: _ERRORS[code] for code in codes}


def actor_for(request: Request) -> Actor:
    """The registry account behind a request, as the use cases see it."""
    user = request.user
    return Actor(
        username=user.get_username(),
        is_superuser=user.is_superuser,
        groups=_group_names(user),
        source_ip=request.META.get("REMOTE_ADDR"),
    )


def _group_names(user: Any) -> frozenset[str]:
    """The names of the user's groups. Every request asks, so the statement
    is written out: building the equivalent queryset took longer than
    running it, and was most of what a short list cost beyond the
    framework's own work (docs/benchmarks.md)."""
    groups, membership = Group._meta.db_table, get_user_model().groups.through._meta.db_table
    with connections[router.db_for_read(Group)].cursor() as cursor:
        cursor.execute(
            f"SELECT g.name FROM {groups} g JOIN {membership} m ON m.group_id = g.id "  # noqa: S608
            "WHERE m.user_id = %s",
            [user.pk],
        )
        return frozenset(name for (name,) in cursor.fetchall())


_CLUSTER_PAGE = """One registered Proxmox VE cluster: its endpoint, credentials' principal
(never a secret), health at the last check and its configuration version.

DELETE deregisters it; Extra Actions → Refresh checks it again now.
"""


@method_decorator(sensitive_post_parameters("password", "token_secret"), name="dispatch")
class ClusterViewSet(viewsets.ViewSet):
    """Proxmox VE clusters registered with this service.

    POST registers a cluster after proving its credentials against the
    cluster's own API; GET lists them by name, a page at a time: `limit`
    (1-1000, default 100), `offset`, `status` (repeat it or give a comma
    list), `search` (part of the name or endpoint, any case), `name` (the
    whole name, any case).
    """

    lookup_value_regex = "[^/.]+"
    # What each action's form in the browsable API asks for; any other
    # action takes no input and shows none (refresh: a bare POST button).
    form_serializers: dict[str, type[serializers.Serializer]] = {
        "create": RegisterClusterSerializer,
    }
    # Set by the actions that show one cluster: its page is titled by it.
    cluster_name: str | None = None

    def get_serializer(self, *args: Any, **kwargs: Any) -> serializers.Serializer:
        """The browsable API's form for the action it is drawing."""
        kwargs.setdefault("context", {"request": self.request, "view": self})
        return self.form_serializers.get(self.action or "", serializers.Serializer)(*args, **kwargs)

    def get_view_name(self) -> str:
        if self.cluster_name:
            return self.cluster_name
        extra_action_name = getattr(self, "name", None)  # @action's, e.g. "Refresh"
        if extra_action_name:
            return str(extra_action_name)
        return "Cluster" if self.detail else "Clusters"

    def get_view_description(self, html: bool = False) -> str:
        """Each page's own text: an @action's docstring, else the list's or
        one cluster's."""
        own = getattr(self, "description", None)
        text = own if own else (_CLUSTER_PAGE if self.detail else self.__class__.__doc__ or "")
        text = formatting.dedent(smart_str(text))
        return formatting.markup_description(text) if html else text

    @extend_schema(
        parameters=_LIST_PARAMETERS, responses={200: ClusterListSerializer, **_errors(400, 401)}
    )
    def list(self, request: Request) -> Response:
        query = cluster_query(request.query_params)
        page = services().clusters.list_clusters(query, actor=actor_for(request))
        return Response(cluster_page(page, request))

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
        self.cluster_name = cluster.name
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


@extend_schema(responses=inline_serializer("Health", {"status": serializers.CharField()}), auth=[])
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request: Request) -> Response:
    """Liveness of this service (not of the registered clusters)."""
    return Response({"status": "healthy"})


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other path under /api/, for every method. A plain Django view:
    as a DRF view it would be a breadcrumb ("Api Not Found") on every page
    of the browsable API."""
    return envelope_response(404, f"No API endpoint at {request.path}")
