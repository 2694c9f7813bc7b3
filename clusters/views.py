"""The REST API: a ViewSet whose actions call ClusterService, plus /health.

DRF's generic views assume a queryset; the registry may live in memory, so
the actions are written out on a plain ViewSet and go through the service.
"""

from __future__ import annotations

from typing import Any

from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from rest_framework import status, viewsets
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

from clusters.serializers import ClusterListSerializer, ClusterSerializer, RegisterClusterSerializer
from clusters.services import ClusterService
from clusters.wiring import get_cluster_service


@method_decorator(sensitive_post_parameters("password", "token_secret"), name="dispatch")
class ClusterViewSet(viewsets.ViewSet):
    """Proxmox VE clusters registered with this service.

    POST registers a cluster after proving its credentials against the
    cluster's own API; GET lists them by name.
    """

    lookup_value_regex = "[^/.]+"

    @property
    def service(self) -> ClusterService:
        return get_cluster_service()

    def get_serializer(self, *args: Any, **kwargs: Any) -> RegisterClusterSerializer:
        """The register form of the browsable API."""
        kwargs.setdefault("context", {"request": self.request, "view": self})
        return RegisterClusterSerializer(*args, **kwargs)

    def get_view_name(self) -> str:
        return "Cluster" if self.detail else "Clusters"

    def list(self, request: Request) -> Response:
        listing = self.service.list_clusters()
        return Response(dict(ClusterListSerializer(listing).data))

    def create(self, request: Request) -> Response:
        registration = RegisterClusterSerializer(data=request.data).to_request()
        cluster = self.service.register(registration)
        location = reverse("cluster-detail", kwargs={"pk": cluster.id}, request=request)
        # A plain dict: the browsable API would render a serializer attached
        # to the data as the next form.
        body = dict(ClusterSerializer(cluster).data)
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": location})

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(dict(ClusterSerializer(self.service.get_cluster(pk)).data))

    def destroy(self, request: Request, pk: str) -> Response:
        self.service.deregister(pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @action(detail=True, methods=["post"])
    def refresh(self, request: Request, pk: str) -> Response:
        """Check the cluster again with its stored credentials."""
        return Response(dict(ClusterSerializer(self.service.refresh(pk)).data))


@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def health(request: Request) -> Response:
    """Liveness of this service (not of the registered clusters)."""
    return Response({"status": "healthy"})


@api_view(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@authentication_classes([])
@permission_classes([AllowAny])
@throttle_classes([])
def api_not_found(request: Request, *args: Any, **kwargs: Any) -> Response:
    raise NotFound(f"No API endpoint at {request.path}")
