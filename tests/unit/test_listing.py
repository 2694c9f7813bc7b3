"""The list's query and page (docs/product-contract.md §12): which values a
query takes, how statuses are spelled, and what a page says about the
pages either side. The backends' side is the repository contract."""

from __future__ import annotations

import pytest

from clusters.domain import (
    MAX_LIMIT,
    MAX_OFFSET,
    SEARCH_MAX_LENGTH,
    ClusterPage,
    ClusterQuery,
    ClusterStatus,
    ValidationFailed,
    parse_statuses,
    public_cluster,
)
from tests.cluster_samples import make_cluster, token_cluster


def test_a_query_defaults_to_the_first_hundred_of_everything():
    query = ClusterQuery()
    assert (query.limit, query.offset, query.statuses, query.search, query.name) == (
        100,
        0,
        frozenset(),
        None,
        None,
    )
    assert not query.filtered


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"limit": 0}, "limit", f"limit must be between 1 and {MAX_LIMIT}"),
        ({"limit": -1}, "limit", f"limit must be between 1 and {MAX_LIMIT}"),
        ({"limit": MAX_LIMIT + 1}, "limit", f"limit must be between 1 and {MAX_LIMIT}"),
        ({"offset": -1}, "offset", f"offset must be between 0 and {MAX_OFFSET}"),
        ({"offset": MAX_OFFSET + 1}, "offset", f"offset must be between 0 and {MAX_OFFSET}"),
        (
            {"search": "x" * (SEARCH_MAX_LENGTH + 1)},
            "search",
            f"search must be at most {SEARCH_MAX_LENGTH} characters",
        ),
        ({"search": "a\x00b"}, "search", "search must not contain control characters"),
        (
            {"name": "n" * (SEARCH_MAX_LENGTH + 1)},
            "name",
            f"name must be at most {SEARCH_MAX_LENGTH} characters",
        ),
        ({"name": "lab\n"}, "name", "name must not contain control characters"),
    ],
)
def test_a_query_out_of_bounds_is_refused_naming_the_field(changes, field, message):
    with pytest.raises(ValidationFailed) as raised:
        ClusterQuery(**changes)
    assert raised.value.message == message
    assert raised.value.details == {field: [message]}


def test_every_bad_value_of_a_query_is_named_at_once():
    with pytest.raises(ValidationFailed) as raised:
        ClusterQuery(limit=0, offset=-1)
    assert set(raised.value.details) == {"limit", "offset"}


def test_the_bounds_themselves_are_allowed():
    assert ClusterQuery(limit=MAX_LIMIT, offset=MAX_OFFSET).limit == MAX_LIMIT
    assert ClusterQuery(limit=1, search="x" * SEARCH_MAX_LENGTH).search == "x" * SEARCH_MAX_LENGTH
    assert ClusterQuery(limit=None).limit is None


def test_empty_filters_are_no_filters_and_a_name_is_trimmed():
    query = ClusterQuery(search="", name="  ")
    assert (query.search, query.name, query.filtered) == (None, None, False)
    assert ClusterQuery(name=" Prod ").name == "Prod"
    assert ClusterQuery(search=" a b ").search == " a b "  # a substring, spaces and all


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], set()),
        (["healthy"], {ClusterStatus.HEALTHY}),
        (["healthy", "degraded"], {ClusterStatus.HEALTHY, ClusterStatus.DEGRADED}),
        (["healthy,unknown"], {ClusterStatus.HEALTHY, ClusterStatus.UNKNOWN}),
        ([" Unhealthy , ,DEGRADED", ""], {ClusterStatus.UNHEALTHY, ClusterStatus.DEGRADED}),
    ],
)
def test_statuses_are_repeated_or_comma_separated_in_any_case(values, expected):
    assert parse_statuses(values) == expected


def test_an_unknown_status_is_refused_naming_it_and_the_choices():
    with pytest.raises(ValidationFailed) as raised:
        parse_statuses(["healthy,sick", "down"])
    message = "Unknown status 'sick', 'down'; choose from healthy, degraded, unhealthy, unknown"
    assert raised.value.message == message
    assert raised.value.details == {"status": [message]}


def test_a_query_matches_by_every_filter_given():
    cluster = public_cluster(make_cluster("Straße-1", api_endpoint="https://pve1.example.com:8006"))
    assert ClusterQuery(search="STRASSE").matches(cluster)
    assert ClusterQuery(search="PVE1.EXAMPLE").matches(cluster)
    assert ClusterQuery(name="strasse-1").matches(cluster)
    assert ClusterQuery(statuses=frozenset({ClusterStatus.HEALTHY})).matches(cluster)
    assert not ClusterQuery(name="strasse").matches(cluster)
    assert not ClusterQuery(statuses=frozenset({ClusterStatus.UNKNOWN})).matches(cluster)
    assert not ClusterQuery(search="strasse", statuses=frozenset({ClusterStatus.UNKNOWN})).matches(
        cluster
    )


@pytest.mark.parametrize(
    ("offset", "shown", "total", "previous", "following"),
    [
        (0, 10, 25, False, True),
        (10, 10, 25, True, True),
        (20, 5, 25, True, False),
        (0, 3, 3, False, False),
        (50, 0, 25, True, False),
    ],
)
def test_a_page_knows_whether_pages_come_before_and_after(
    offset, shown, total, previous, following
):
    clusters = [public_cluster(make_cluster(f"c{i}")) for i in range(shown)]
    page = ClusterPage(clusters, total, ClusterQuery(limit=10, offset=offset))
    assert (page.has_previous, page.has_next) == (previous, following)


def test_a_public_cluster_names_the_principal_by_its_kind_and_holds_no_secret():
    password, token = public_cluster(make_cluster()), public_cluster(token_cluster())
    assert (password["auth_method"], password["username"], password["token_id"]) == (
        "password",
        "root@pam",
        None,
    )
    assert (token["auth_method"], token["username"], token["token_id"]) == (
        "token",
        None,
        "root@pam!proxmoxer",
    )
    assert "hunter2" not in repr(password) and "5f1c0d9e" not in repr(token)
