"""Prometheus metrics (docs/operations.md, "Metrics"): what ``GET /metrics``
shows, across every worker process.

- Cluster gauges (``proxmoxer_clusters``, ``proxmoxer_cluster_up``,
  ``proxmoxer_cluster_nodes_online``) are read from storage at each scrape,
  not kept per process: any process answers for the whole registry.
- Check and request metrics are counted where they happen, in whichever
  process that is. Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` (set by
  ``make serve``) makes prometheus-client keep them in files there, and a
  scrape sums every process's (its multiprocess mode).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clusters.domain import Actor, ClusterQuery, ClusterStatus, PublicCluster
from clusters.services import CheckOutcome

UP_STATUSES = frozenset({ClusterStatus.HEALTHY, ClusterStatus.DEGRADED})

CHECKS = Counter(
    "proxmoxer_checks_total",
    "Checks of a cluster's API, by how they ended (success, unauthorized, error)",
    ["outcome"],
)
CHECK_DURATION = Histogram(
    "proxmoxer_check_duration_seconds",
    "How long one check of a cluster's API took",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30),
)
REQUESTS = Counter(
    "proxmoxer_http_requests_total",
    "HTTP requests answered, by view (URL name), method and status",
    ["view", "method", "status"],
)
REQUEST_DURATION = Histogram(
    "proxmoxer_http_request_duration_seconds",
    "Time to answer an HTTP request, by view (URL name) and method",
    ["view", "method"],
)


class PrometheusCheckObserver:
    """The check service's observer (clusters/services/ports.py) that counts."""

    def check_finished(self, outcome: CheckOutcome, seconds: float) -> None:
        CHECKS.labels(outcome.value).inc()
        CHECK_DURATION.observe(seconds)


def nodes_online(cluster: PublicCluster) -> int:
    """Nodes online at the last check. Until clusters record ``nodes_online``
    themselves, the node count of a cluster that is up stands in for it."""
    return cluster["node_count"] if cluster["status"] in UP_STATUSES else 0


class ClusterCollector(Collector):
    """The cluster gauges, computed from storage when scraped."""

    def collect(self) -> Iterator[Metric]:
        from clusters.wiring import services

        everything = ClusterQuery(limit=None)
        page = services().clusters.list_clusters(everything, actor=Actor.system())
        by_status = GaugeMetricFamily(
            "proxmoxer_clusters", "Registered clusters by health status", labels=["status"]
        )
        tally = Tally(cluster["status"] for cluster in page.clusters)
        for status in ClusterStatus:
            by_status.add_metric([status.value], tally[status.value])
        up = GaugeMetricFamily(
            "proxmoxer_cluster_up",
            "1 when the cluster is healthy or degraded at its last check, else 0",
            labels=["cluster"],
        )
        online = GaugeMetricFamily(
            "proxmoxer_cluster_nodes_online",
            "Nodes online at the cluster's last check",
            labels=["cluster"],
        )
        for cluster in page.clusters:
            up.add_metric([cluster["name"]], 1 if cluster["status"] in UP_STATUSES else 0)
            online.add_metric([cluster["name"]], nodes_online(cluster))
        yield from (by_status, up, online)


_CLUSTERS = CollectorRegistry(auto_describe=False)
_CLUSTERS.register(ClusterCollector())


def exposition() -> bytes:
    """Every metric in the Prometheus text format: this process's (or, in
    multiprocess mode, every process's) counters, and the cluster gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    return generate_latest(counted) + generate_latest(_CLUSTERS)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def metrics_view(request: HttpRequest) -> HttpResponse:
    """``GET /metrics``: 404 unless PROXMOXER_METRICS_TOKEN is set; then only
    for ``Authorization: Bearer <that token>``, compared in constant time."""
    token = settings.PROXMOXER_METRICS_TOKEN
    if not token:
        raise Http404("metrics are off")
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    # Digests of equal length: the comparison time tells nothing about the
    # token, not even its length.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        _digest(supplied.strip()), _digest(token)
    ):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)


# Any other word a client sends as its method is "other": one series each
# would let a client grow the metrics without bound.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetricsMiddleware:
    """Counts every request and its latency, labelled by the URL's name."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = request.resolver_match
        # URL names only: a path would give every cluster id a series of its own.
        view = (match.view_name or "unnamed") if match is not None else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        REQUESTS.labels(view, method, str(response.status_code)).inc()
        REQUEST_DURATION.labels(view, method).observe(elapsed)
        return response
