"""The REST API: a ViewSet whose actions call ClusterService, plus the
probes /health (liveness) and /health/ready (readiness).

DRF's generic views assume a queryset; the registry may live in memory, so
the actions are written out on a plain ViewSet and go through the service.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch
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
from rest_framework.utils.urls import remove_query_param, replace_query_param

from clusters.access import actor_for
from clusters.api_errors import DATABASE_RETRY_AFTER_SECONDS, InvalidInput, envelope_response
from clusters.domain import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    AuditAction,
    Cluster,
    ClusterError,
    ClusterStatus,
    Permission,
    may,
)
from clusters.readiness import readiness
from clusters.serializers import (
    AuditEventListSerializer,
    AuditEventSerializer,
    AuditQuerySerializer,
    ClusterListSerializer,
    ClusterSerializer,
    DeregisterSerializer,
    EditClusterSerializer,
    ErrorSerializer,
    HistorySerializer,
    NodeListSerializer,
    PageSerializer,
    RegisterClusterSerializer,
    StatusChangeSerializer,
    cluster_body,
    cluster_page,
    cluster_query,
    page_links,
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
_READING_METHODS = {"get", "head", "options"}
# Every operation can meet these, whatever it is asked.
_ANY_REQUEST = (400, 401, 403, 406, 429, 503)
_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)
_PAGE = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="1 to 1000, default 100"),
    OpenApiParameter("offset", OpenApiTypes.INT, description="default 0"),
]
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


_CLUSTER_PAGE = """One registered Proxmox VE cluster: its endpoint, credentials' principal
(never a secret), health at the last check and its configuration version.

PATCH edits it, DELETE deregisters it and POST to its `refresh` checks it
again now, for an account whose role may.
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

    lookup_value_regex = "[^/]+"
    # What each action's form in the browsable API asks for; any other
    # action takes no input and shows none (refresh: a bare POST button).
    form_serializers: dict[str, type[serializers.Serializer]] = {
        "create": RegisterClusterSerializer,
    }
    # Set by the actions that show one cluster: its page is titled by it.
    cluster_name: str | None = None
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

    def get_serializer(self, *args: Any, **kwargs: Any) -> serializers.Serializer:
        """The forms of the browsable API: register on the list, edit (with
        the current values, secrets blank) on a cluster, none for an action
        that takes no input."""
        kwargs.setdefault("context", {"request": self.request, "view": self})
        if self.request.method == "PATCH":
            if kwargs.get("instance") is None and "pk" in self.kwargs:
                kwargs["instance"] = self._current_values(self.kwargs["pk"])
            return EditClusterSerializer(*args, **kwargs)
        return self.form_serializers.get(self.action or "", serializers.Serializer)(*args, **kwargs)

    def _current_values(self, pk: str) -> dict[str, Any] | None:
        """The edit form's values; None (a blank form, which the page of an
        error does not show anyway) where the cluster cannot be read."""
        try:
            cluster = services().clusters.get_cluster(pk, actor=actor_for(self.request))
        except ClusterError:
            return None
        return EditClusterSerializer.current_values(cluster)

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

    @extend_schema(parameters=_LIST_PARAMETERS, responses={200: ClusterListSerializer, **_errors()})
    def list(self, request: Request) -> Response:
        query = cluster_query(request.query_params)
        page = services().clusters.list_clusters(query, actor=actor_for(request))
        return Response(cluster_page(page, request))

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
        self.cluster_name = cluster.name
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
        self.cluster_name = cluster.name
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
        following, preceding = page_links(
            request,
            limit=limit,
            offset=offset,
            has_next=offset + limit < history.total,
            has_previous=offset > 0,
        )
        return Response(
            {
                "events": StatusChangeSerializer(history.events, many=True).data,
                "total": history.total,
                "next": following,
                "previous": preceding,
            }
        )


def _cluster_response(cluster: Cluster, **kwargs: Any) -> Response:
    """The cluster, with its ETag. A plain dict: the browsable API would
    render a serializer attached to the data as the next form."""
    headers = {"ETag": etag(cluster), **kwargs.pop("headers", {})}
    return Response(cluster_body(cluster), headers=headers, **kwargs)


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


@csrf_exempt
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Any other path under /api/, for every method. A plain Django view:
    as a DRF view it would be a breadcrumb ("Api Not Found") on every page
    of the browsable API."""
    return envelope_response(404, f"No API endpoint at {request.path}")
