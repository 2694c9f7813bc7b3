"""``GET /metrics`` (docs/operations.md, "Metrics"): off without a token,
the bearer token required with one, the Prometheus text format, and values
that follow registrations, checks, deletions and requests."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import requests_mock
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from clusters.domain import OPERATORS, ClusterStatus
from clusters.metrics import PrometheusCheckObserver
from clusters.wiring import install_services, services_from_settings
from tests import pve_responses as pve
from tests.backends import backend_param, units_of_work
from tests.cluster_samples import make_cluster
from tests.conftest import with_role
from tests.units_of_work import AutoCommit

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-9f8e7d6c5b4a"
PASSWORD = "Pa55-metrics-secret-77aa"


@pytest.fixture
def metrics_on(settings: Any) -> None:
    settings.PROXMOXER_METRICS_TOKEN = TOKEN


def scrape(**headers: str) -> Any:
    return Client().get("/metrics", **headers)


def samples() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an authorised scrape, by name and labels; the text
    must parse as the Prometheus format."""
    response = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    found = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def test_metrics_are_a_404_while_no_token_is_set(settings: Any) -> None:
    settings.PROXMOXER_METRICS_TOKEN = ""

    assert scrape().status_code == 404
    assert scrape(HTTP_AUTHORIZATION="Bearer ").status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Token {TOKEN}", f"Basic {TOKEN}", f"{TOKEN}"],
)
def test_metrics_need_the_bearer_token(metrics_on: None, authorization: str | None) -> None:
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}

    response = scrape(**headers)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"proxmoxer" not in response.content


def test_metrics_with_the_token_are_the_prometheus_text_format(metrics_on: None) -> None:
    response = scrape(HTTP_AUTHORIZATION=f"bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {
        "proxmoxer_clusters",
        "proxmoxer_cluster_up",
        "proxmoxer_cluster_nodes_online",
        "proxmoxer_checks",
        "proxmoxer_check_duration_seconds",
        "proxmoxer_http_requests",
        "proxmoxer_http_request_duration_seconds",
    } <= names


@pytest.fixture(params=[backend_param(backend, api=True) for backend in ("memory", "sqlite")])
def api(request: pytest.FixtureRequest, compose: Any, django_user_model: Any) -> APIClient:
    compose(unit_of_work=units_of_work(request.param), check_observer=PrometheusCheckObserver())
    client = APIClient()
    client.force_authenticate(
        with_role(django_user_model.objects.create_user("operator"), OPERATORS)
    )
    return client


def unreachable(pve_api: requests_mock.Mocker, endpoint: str = pve.ENDPOINT) -> None:
    pve_api.post(
        f"{endpoint}/api2/json/access/ticket",
        exc=requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused")),
    )


def register(api: APIClient, name: str, endpoint: str = "pve.example.com") -> str:
    response = api.post(
        "/api/v1/clusters",
        {"name": name, "api_endpoint": endpoint, "username": "root@pam", "password": PASSWORD},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_cluster_gauges_follow_registrations_checks_and_deletions(
    metrics_on: None, api: APIClient, pve_api: requests_mock.Mocker
) -> None:
    endpoints = pve.healthy_clusters(pve_api, ["prod", "lab"])
    prod, lab = (register(api, name, endpoint) for name, endpoint in endpoints.items())

    found = samples()
    assert value(found, "proxmoxer_clusters", status="healthy") == 2
    assert value(found, "proxmoxer_clusters", status="unhealthy") == 0
    assert value(found, "proxmoxer_cluster_up", cluster="prod") == 1
    assert value(found, "proxmoxer_cluster_nodes_online", cluster="lab") == 3

    unreachable(pve_api, endpoints["lab"])
    assert api.post(f"/api/v1/clusters/{lab}/refresh").status_code == 200
    found = samples()
    assert value(found, "proxmoxer_clusters", status="healthy") == 1
    assert value(found, "proxmoxer_clusters", status="unhealthy") == 1
    assert value(found, "proxmoxer_cluster_up", cluster="lab") == 0
    assert value(found, "proxmoxer_cluster_nodes_online", cluster="lab") == 0

    assert api.delete(f"/api/v1/clusters/{prod}").status_code == 204
    found = samples()
    assert value(found, "proxmoxer_clusters", status="healthy") == 0
    assert value(found, "proxmoxer_cluster_up", cluster="prod") is None
    assert value(found, "proxmoxer_cluster_up", cluster="lab") == 0


def test_a_degraded_cluster_is_up_and_an_unknown_one_is_not(metrics_on: None, compose: Any) -> None:
    unit_of_work = units_of_work("memory")
    compose(unit_of_work=unit_of_work)
    store = AutoCommit(unit_of_work)
    store.add(make_cluster("limping", status=ClusterStatus.DEGRADED, node_count=4))
    store.add(make_cluster("mute", status=ClusterStatus.UNKNOWN, node_count=2))

    found = samples()

    assert value(found, "proxmoxer_cluster_up", cluster="limping") == 1
    assert value(found, "proxmoxer_cluster_nodes_online", cluster="limping") == 4
    assert value(found, "proxmoxer_cluster_up", cluster="mute") == 0
    assert value(found, "proxmoxer_cluster_nodes_online", cluster="mute") == 0
    assert value(found, "proxmoxer_clusters", status="degraded") == 1
    assert value(found, "proxmoxer_clusters", status="unknown") == 1


def test_checks_are_counted_by_outcome_and_timed(
    metrics_on: None, api: APIClient, pve_api: requests_mock.Mocker
) -> None:
    pve.healthy_cluster(pve_api)
    cluster = register(api, "prod")
    before = samples()

    assert api.post(f"/api/v1/clusters/{cluster}/refresh").status_code == 200
    pve.login_refused(pve_api)
    assert api.post(f"/api/v1/clusters/{cluster}/refresh").status_code == 200
    unreachable(pve_api)
    assert api.post(f"/api/v1/clusters/{cluster}/refresh").status_code == 200
    after = samples()

    def grew(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    assert grew("proxmoxer_checks_total", outcome="success") == 1
    assert grew("proxmoxer_checks_total", outcome="unauthorized") == 1
    assert grew("proxmoxer_checks_total", outcome="error") == 1
    assert grew("proxmoxer_check_duration_seconds_count") == 3
    assert grew("proxmoxer_check_duration_seconds_sum") >= 0


def test_requests_are_counted_and_timed_by_view(metrics_on: None, api: APIClient) -> None:
    before = samples()

    for _ in range(3):
        assert api.get("/api/v1/clusters").status_code == 200
    assert api.get("/api/v1/clusters", {"limit": "x"}).status_code == 400
    assert api.get("/api/v1/no-such-thing").status_code == 404
    after = samples()

    def grew(name: str, **labels: str) -> float:
        return (value(after, name, **labels) or 0) - (value(before, name, **labels) or 0)

    list_ok = {"view": "cluster-list", "method": "GET", "status": "200"}
    assert grew("proxmoxer_http_requests_total", **list_ok) == 3
    assert grew("proxmoxer_http_requests_total", **{**list_ok, "status": "400"}) == 1
    assert (
        grew("proxmoxer_http_request_duration_seconds_count", view="cluster-list", method="GET")
        == 4
    )
    unknown = [key for key in after if key[0] == "proxmoxer_http_requests_total"]
    assert not any("no-such-thing" in str(labels) for _, labels in unknown)


def test_an_invented_method_does_not_make_a_series_of_its_own(metrics_on: None) -> None:
    Client().generic("BREW", "/health")

    found = samples()

    methods = {
        dict(labels)["method"] for name, labels in found if name == "proxmoxer_http_requests_total"
    }
    assert "BREW" not in methods and "other" in methods


def test_metrics_show_no_secret(metrics_on: None, api: APIClient, pve_api: Any) -> None:
    pve.healthy_cluster(pve_api)
    register(api, "prod")

    response = scrape(HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert PASSWORD not in response.content.decode()


def test_the_services_the_settings_compose_count_checks(
    metrics_on: None, api_client: APIClient, healthy_pve: requests_mock.Mocker
) -> None:
    """The default composition (clusters/wiring.py), as a server runs it."""
    install_services(services_from_settings())
    cluster = register(api_client, "prod")
    before = value(samples(), "proxmoxer_checks_total", outcome="success") or 0

    assert api_client.post(f"/api/v1/clusters/{cluster}/refresh").status_code == 200

    assert value(samples(), "proxmoxer_checks_total", outcome="success") == before + 1
