"""``GET /api/v1/clusters`` at scale (docs/product-contract.md §12), through
the whole HTTP stack on every backend: paging with ``next``/``previous``,
filters, totals of the filtered set, a listed cluster exactly as its own
page shows it, and a 400 in the envelope for every bad value."""

from __future__ import annotations

import random
from typing import Any

import pytest
from rest_framework.test import APIClient

from clusters.domain import VIEWERS, Cluster, ClusterStatus, name_key
from tests.backends import BACKENDS, backend_param, units_of_work
from tests.cluster_samples import make_cluster, token_cluster
from tests.conftest import with_role
from tests.units_of_work import AutoCommit

CLUSTERS = "/api/v1/clusters"
STATUSES = [
    ClusterStatus.HEALTHY,
    ClusterStatus.DEGRADED,
    ClusterStatus.HEALTHY,
    ClusterStatus.UNHEALTHY,
    ClusterStatus.UNKNOWN,
]


@pytest.fixture(params=[backend_param(backend, api=True) for backend in BACKENDS])
def store(request: pytest.FixtureRequest, compose: Any) -> AutoCommit:
    """The backend the API serves, filled directly through its units of work."""
    unit_of_work = units_of_work(request.param)
    compose(unit_of_work=unit_of_work)
    return AutoCommit(unit_of_work)


@pytest.fixture
def client(django_user_model: Any) -> APIClient:
    api = APIClient()
    api.force_authenticate(with_role(django_user_model.objects.create_user("viewer"), VIEWERS))
    return api


def fill(store: AutoCommit, count: int) -> list[Cluster]:
    clusters = [
        make_cluster(
            f"{'Lab' if i % 2 else 'lab'}-{i:02d}",
            status=STATUSES[i % len(STATUSES)],
            api_endpoint=f"https://pve{i:02d}.site{i % 2}.example.com:8006",
        )
        for i in range(count)
    ]
    for cluster in random.Random(count).sample(clusters, count):
        store.add(cluster)
    return sorted(clusters, key=lambda c: name_key(c.name))


def get(client: APIClient, query: str = "", **params: Any) -> dict[str, Any]:
    response = client.get(f"{CLUSTERS}{query}", params)
    assert response.status_code == 200, response.content
    return response.json()


def names(body: dict[str, Any]) -> list[str]:
    return [cluster["name"] for cluster in body["clusters"]]


def test_following_next_walks_every_cluster_once_in_name_order(
    client: APIClient, store: AutoCommit
) -> None:
    fleet = fill(store, 12)

    first = get(client, limit=5)
    assert (first["total"], first["previous"]) == (12, None)
    assert first["next"] == "http://testserver/api/v1/clusters?limit=5&offset=5"
    seen, body = names(first), first
    while body["next"] is not None:
        body = client.get(body["next"]).json()
        seen += names(body)
        assert body["total"] == 12

    assert seen == [c.name for c in fleet]
    assert body["previous"] == "http://testserver/api/v1/clusters?limit=5&offset=5"
    back = client.get(body["previous"]).json()
    assert back["previous"] == "http://testserver/api/v1/clusters?limit=5"


def test_the_default_page_holds_a_hundred(client: APIClient, store: AutoCommit) -> None:
    fill(store, 101)

    body = get(client)

    assert (len(body["clusters"]), body["total"]) == (100, 101)
    assert body["next"] == "http://testserver/api/v1/clusters?limit=100&offset=100"
    assert len(get(client, limit=1000)["clusters"]) == 101


def test_a_listed_cluster_is_exactly_what_its_own_page_shows(
    client: APIClient, store: AutoCommit
) -> None:
    """The list renders each backend's public form of a cluster, the detail
    page ClusterSerializer's: the same fields, in the same order, written
    the same way (a field added to one and not the other fails here)."""
    stored = [make_cluster("Prod-EU"), token_cluster("Lab")]
    for cluster in stored:
        store.add(cluster)

    listed = get(client)["clusters"]

    for item in listed:
        detail = client.get(f"{CLUSTERS}/{item['id']}").json()
        assert list(item.items()) == list(detail.items())
    assert listed[0]["created_at"] == "2026-03-14T15:09:26.535897Z"
    assert listed[0]["last_checked_at"] == "2026-03-14T15:09:26.535898Z"


@pytest.mark.parametrize(
    ("params", "expected_statuses"),
    [
        ("?status=healthy", {"healthy"}),
        ("?status=degraded&status=unknown", {"degraded", "unknown"}),
        ("?status=degraded,unknown", {"degraded", "unknown"}),
        ("?status=UNHEALTHY", {"unhealthy"}),
    ],
)
def test_status_filters_the_list_and_its_total(
    client: APIClient, store: AutoCommit, params: str, expected_statuses: set[str]
) -> None:
    fleet = fill(store, 15)
    expected = [c.name for c in fleet if c.status in expected_statuses]

    body = get(client, f"{params}&limit=2")

    assert names(body) == expected[:2]
    assert body["total"] == len(expected)
    following = client.get(body["next"]).json()
    assert names(following) == expected[2:4]
    assert following["total"] == len(expected)


def test_search_and_name_filter_the_list(client: APIClient, store: AutoCommit) -> None:
    fleet = fill(store, 15)

    site1 = get(client, search="SITE1")
    assert names(site1) == [c.name for c in fleet if "site1" in c.api_endpoint]
    assert site1["total"] == 7
    assert names(get(client, search="lab-1")) == [
        f"{'Lab' if i % 2 else 'lab'}-{i}" for i in range(10, 15)
    ]
    named = get(client, name="LAB-03")
    assert (names(named), named["total"], named["next"]) == (["Lab-03"], 1, None)
    assert get(client, name="lab-0")["clusters"] == []
    healthy_site0 = get(client, search="site0", status="healthy")
    assert healthy_site0["total"] == len(
        [c for c in fleet if "site0" in c.api_endpoint and c.status == "healthy"]
    )


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": "abc"}, "limit", "limit must be a whole number"),
        ({"limit": "1.5"}, "limit", "limit must be a whole number"),
        ({"limit": ""}, "limit", "limit must be a whole number"),
        ({"limit": "1e3"}, "limit", "limit must be a whole number"),
        ({"limit": "0"}, "limit", "limit must be between 1 and 1000"),
        ({"limit": "-5"}, "limit", "limit must be between 1 and 1000"),
        ({"limit": "1001"}, "limit", "limit must be between 1 and 1000"),
        ({"offset": "-1"}, "offset", "offset must be between 0 and 2147483647"),
        ({"offset": "9" * 12}, "offset", "offset must be between 0 and 2147483647"),
        ({"offset": "9" * 40}, "offset", "offset must be a whole number"),
        ({"offset": "two"}, "offset", "offset must be a whole number"),
        (
            {"status": ["healthy", "on-fire"]},
            "status",
            "Unknown status 'on-fire'; choose from healthy, degraded, unhealthy, unknown",
        ),
        ({"search": "x" * 256}, "search", "search must be at most 255 characters"),
        ({"search": "a\x00b"}, "search", "search must not contain control characters"),
        ({"name": "lab\x00"}, "name", "name must not contain control characters"),
    ],
)
def test_a_bad_list_parameter_is_a_400_naming_it(
    client: APIClient, store: AutoCommit, params: dict[str, Any], field: str, message: str
) -> None:
    fill(store, 3)

    response = client.get(CLUSTERS, params)

    assert response.status_code == 400
    assert response.json() == {
        "code": "BadRequest",
        "message": message,
        "details": {field: [message]},
    }


def test_every_bad_parameter_is_named_in_one_answer(client: APIClient, store: AutoCommit) -> None:
    response = client.get(CLUSTERS, {"limit": "x", "offset": "-1", "status": "nope"})

    assert response.status_code == 400
    assert set(response.json()["details"]) == {"limit", "status"}


def test_an_account_without_a_role_may_not_list(store: AutoCommit, django_user_model: Any) -> None:
    fill(store, 2)
    api = APIClient()
    api.force_authenticate(django_user_model.objects.create_user("nobody"))

    response = api.get(CLUSTERS, {"status": "healthy"})

    assert response.status_code == 403
    assert response.json()["code"] == "Forbidden"


def test_unauthenticated_list_is_a_401_whatever_the_parameters(store: AutoCommit) -> None:
    response = APIClient().get(CLUSTERS, {"limit": "x"})

    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"


def test_links_keep_every_filter_in_order_and_set_only_the_paging(
    client: APIClient, store: AutoCommit
) -> None:
    fill(store, 15)
    query = "?status=unknown&status=degraded&search=LAB&limit=1&offset=1&format=json"

    body = get(client, query)

    assert body["next"] == (
        "http://testserver/api/v1/clusters"
        "?format=json&limit=1&offset=2&search=LAB&status=unknown&status=degraded"
    )
    assert body["previous"] == (
        "http://testserver/api/v1/clusters"
        "?format=json&limit=1&search=LAB&status=unknown&status=degraded"
    )
    assert client.get(body["next"]).json()["total"] == body["total"]
