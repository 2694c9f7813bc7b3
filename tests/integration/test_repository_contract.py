"""One contract, every backend: the in-memory store and the Django model on
SQLite and on PostgreSQL pass the same tests, so the fake the unit tests use
cannot drift from the databases production uses.

Each test runs as ``[memory]``, ``[sqlite]`` and ``[postgres]``; the last
needs the server of DATABASE_URL_POSTGRES (tests/postgres.py).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.db import connections

from clusters.domain import (
    AUDIT_PAGE_MAX,
    SECRET_CHANGED,
    Actor,
    AuditAction,
    AuditEvent,
    AuditQuery,
    Cluster,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterQuery,
    ClusterStatus,
    Outcome,
    PasswordCredentials,
    StaleCluster,
    name_key,
    public_cluster,
    rfc3339,
)
from tests.backends import ALIASES, BACKENDS, backend_param, units_of_work
from tests.cluster_samples import NOW, make_cluster, token_cluster
from tests.conftest import assert_secret_absent
from tests.units_of_work import AutoCommit

LATER = NOW + timedelta(hours=1)


@pytest.fixture(params=[backend_param(backend, transaction=False) for backend in BACKENDS])
def repository(request: pytest.FixtureRequest) -> AutoCommit:
    """Each test inside a transaction rolled back afterwards."""
    return AutoCommit(units_of_work(request.param))


@pytest.fixture(params=[backend_param(backend, transaction=True) for backend in BACKENDS])
def shared_repository(request: pytest.FixtureRequest) -> AutoCommit:
    """Committed writes, which other threads' database connections see."""
    return AutoCommit(units_of_work(request.param))


def memory_order(clusters: list[Cluster]) -> list[str]:
    """The order the contract promises, spelled out as the memory backend keys it."""
    return [c.name for c in sorted(clusters, key=lambda c: (name_key(c.name), c.name, c.id.int))]


# -- add and find -------------------------------------------------------------------------------


@pytest.mark.parametrize("stored", [make_cluster, token_cluster], ids=["password", "token"])
def test_find_by_id_returns_the_saved_cluster_field_for_field(
    repository: AutoCommit, stored: Callable[[], Cluster]
) -> None:
    cluster = stored()
    repository.add(cluster)

    found = repository.find_by_id(cluster.id)

    assert found == cluster
    assert found.credentials.principal == cluster.credentials.principal
    assert found.credentials.auth_method == cluster.credentials.auth_method
    assert found.created_at == NOW and found.created_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize("stored", [make_cluster, token_cluster], ids=["password", "token"])
def test_found_cluster_reveals_the_saved_secret(
    repository: AutoCommit, stored: Callable[[], Cluster]
) -> None:
    cluster = stored()
    repository.add(cluster)
    credentials = repository.find_by_id(cluster.id).credentials

    secret = (
        credentials.password if isinstance(credentials, PasswordCredentials) else credentials.secret
    )
    expected = cluster.credentials
    assert (
        secret.reveal()
        == (
            expected.password if isinstance(expected, PasswordCredentials) else expected.secret
        ).reveal()
    )


def test_find_by_id_raises_cluster_not_found_for_an_unknown_id(
    repository: AutoCommit,
) -> None:
    repository.add(make_cluster())
    missing = uuid.uuid4()

    with pytest.raises(ClusterNotFound) as raised:
        repository.find_by_id(missing)

    assert raised.value.cluster_id == missing
    assert str(missing) in raised.value.message


NAME_CASE_VARIANTS = [
    ("Prod-EU", "prod-eu"),
    ("prod-eu", "PROD-EU"),
    ("Ärger", "äRGER"),  # non-ASCII letters: SQLite's LOWER() would miss these
    ("Straße", "STRASSE"),  # casefold, not lower: ß folds to ss
    ("Σίσυφος", "ΣΊΣΥΦΟΣ"),  # final sigma
    ("ﬃ-lab", "FFI-LAB"),  # one character folding to three
    ("prod", "\uff50\uff52\uff4f\uff44"),  # full-width letters: NFKC
    ("caf\u00e9", "CAFE\u0301"),  # composed, and with a combining accent
    ("\u216b-rack", "XII-RACK"),  # ROMAN NUMERAL TWELVE
]


@pytest.mark.parametrize(("stored_name", "asked_name"), NAME_CASE_VARIANTS)
def test_find_by_name_ignores_case(
    repository: AutoCommit, stored_name: str, asked_name: str
) -> None:
    cluster = make_cluster(stored_name)
    repository.add(cluster)
    repository.add(make_cluster("Other"))

    assert repository.find_by_name(asked_name) == cluster
    assert repository.find_by_name(stored_name) == cluster


def test_find_by_name_returns_none_for_an_unknown_name(repository: AutoCommit) -> None:
    repository.add(make_cluster("Prod-EU"))

    assert repository.find_by_name("Prod-US") is None
    assert repository.find_by_name("Prod-EU ") is None


@pytest.mark.parametrize(("stored_name", "taken_name"), NAME_CASE_VARIANTS)
def test_save_refuses_a_name_held_case_insensitively(
    repository: AutoCommit, stored_name: str, taken_name: str
) -> None:
    first = make_cluster(stored_name)
    repository.add(first)

    with pytest.raises(ClusterNameTaken) as raised:
        repository.add(make_cluster(taken_name))

    assert raised.value.name == taken_name
    assert list(repository.list()) == [first]


@pytest.mark.parametrize(
    ("one", "other"), [("a", "á"), ("i", "\u0131"), ("Prod", "Prod-2"), ("ß", "s")]
)
def test_save_accepts_names_that_differ_beyond_case(
    repository: AutoCommit, one: str, other: str
) -> None:
    repository.add(make_cluster(one))
    repository.add(make_cluster(other))

    assert {c.name for c in repository.list()} == {one, other}


def test_save_accepts_the_longest_name_even_when_casefolding_triples_it(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster("ﬃ" * 255)
    repository.add(cluster)

    assert repository.find_by_name("FFI" * 255) == cluster


def test_save_accepts_a_name_whose_key_is_the_longest_allowed(repository: AutoCommit) -> None:
    name = "\ufdfa" * 42  # eighteen characters each under NFKC: a key of 756
    cluster = make_cluster(name)
    repository.add(cluster)

    assert repository.find_by_name(name_key(name)) == cluster


def test_save_refuses_an_id_already_stored(repository: AutoCommit) -> None:
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)

    with pytest.raises(ValueError, match="already stored"):
        repository.add(replace(cluster, name="Prod-US"))
    with pytest.raises(ClusterNameTaken):  # the name is checked first
        repository.add(cluster)
    assert list(repository.list()) == [cluster]


# -- list ---------------------------------------------------------------------------------------

ORDERING_NAMES = [
    "beta", "Alpha", "alpha-2", "_internal", "Zeta", "zeta2", "Äpfel", "apfel", "Éclair",
    "eclair", "10-rack", "9-rack", "Straße", "strasse-2", "İstanbul", "istanbul", "Ωmega",
    "ωmega-2", "東京", "🚀 launch", "a b", "a-b", "a_b", "ab", "B", "b1",
]  # fmt: skip


def test_list_is_empty_for_an_empty_repository(repository: AutoCommit) -> None:
    assert list(repository.list()) == []


def test_list_orders_by_casefolded_name_by_code_point(repository: AutoCommit) -> None:
    """Not a database collation's idea of order: en_US would ignore the
    punctuation in "a b"/"a-b"/"a_b" and put "É" beside "e"."""
    clusters = [make_cluster(name) for name in ORDERING_NAMES]
    for cluster in random.Random(7).sample(clusters, len(clusters)):
        repository.add(cluster)

    listed = repository.list()

    assert [c.name for c in listed] == memory_order(clusters)
    assert listed[0] == next(c for c in clusters if c.name == listed[0].name)


def test_list_follows_every_kind_of_write(repository: AutoCommit) -> None:
    clusters = {name: make_cluster(name) for name in ("delta", "Bravo", "charlie")}
    for cluster in clusters.values():
        repository.add(cluster)
    assert [c.name for c in repository.list()] == ["Bravo", "charlie", "delta"]

    repository.add(make_cluster("alpha"))
    repository.delete(clusters["charlie"].id)
    echo = clusters["delta"].reconfigured(at=NOW, name="Echo")
    repository.update(echo)
    repository.record_check(echo.observed(at=NOW, status=ClusterStatus.DEGRADED))

    listed = repository.list()
    assert [c.name for c in listed] == ["alpha", "Bravo", "Echo"]
    assert listed[2].status is ClusterStatus.DEGRADED


# -- page: the list at scale --------------------------------------------------------------------

_STATUS_CYCLE = [
    ClusterStatus.HEALTHY,
    ClusterStatus.DEGRADED,
    ClusterStatus.UNHEALTHY,
    ClusterStatus.HEALTHY,
    ClusterStatus.UNKNOWN,
]


def _fleet(repository: AutoCommit, count: int = 23) -> list[Cluster]:
    """``count`` clusters with mixed-case names and a status each, stored in
    random order; returned in the contract's order."""
    clusters = [
        make_cluster(
            f"{'Node' if i % 2 else 'node'}-{i:02d}",
            status=_STATUS_CYCLE[i % len(_STATUS_CYCLE)],
            api_endpoint=f"https://pve{i:02d}.rack{i % 3}.example.com:8006",
        )
        for i in range(count)
    ]
    for cluster in random.Random(count).sample(clusters, count):
        repository.add(cluster)
    return sorted(clusters, key=lambda c: (name_key(c.name), c.name, c.id.int))


def _names(page: object) -> list[str]:
    return [cluster["name"] for cluster in page.clusters]  # type: ignore[attr-defined]


def test_page_shows_every_cluster_as_public_cluster_does(repository: AutoCommit) -> None:
    """Field for field, in the API's order, for both kinds of credentials:
    the database reads columns straight into this form, the memory store
    keeps one per cluster; both must say what the domain says."""
    stored = [make_cluster("Prod-EU"), token_cluster("Lab")]
    checked = stored[0].observed(
        at=NOW + timedelta(minutes=1),
        status=ClusterStatus.UNHEALTHY,
        last_error="The certificate of https://pve1.example.com:8006 is not the pinned one",
        last_error_details={"fingerprint": "12:34:AB:CD", "expected": "AB:CD:12:34"},
    )
    for cluster in stored:
        repository.add(cluster)
    repository.record_check(checked)

    page = repository.repository.page(ClusterQuery())

    expected = [public_cluster(stored[1]), public_cluster(checked)]
    assert [list(c.items()) for c in page.clusters] == [list(c.items()) for c in expected]
    assert page.total == 2


def test_page_writes_times_and_ids_as_the_api_does(repository: AutoCommit) -> None:
    """Whole seconds without a fraction, another zone in UTC, no check yet:
    each backend's shortcut to the text must land where rfc3339 does."""
    whole_second = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    elsewhere = datetime(2026, 5, 1, 14, 30, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    cluster = make_cluster(
        "times", created_at=whole_second, updated_at=elsewhere, last_checked_at=None
    )
    repository.add(cluster)

    [listed] = repository.repository.page(ClusterQuery()).clusters

    assert (listed["id"], listed["created_at"], listed["updated_at"]) == (
        str(cluster.id),
        "2026-05-01T12:00:00Z",
        "2026-05-01T12:30:00.250000Z",
    )
    assert listed["last_checked_at"] is None
    assert listed == public_cluster(cluster)


def test_page_never_carries_a_secret(repository: AutoCommit) -> None:
    repository.add(make_cluster("Prod-EU"))
    repository.add(token_cluster("Lab"))

    page = repository.repository.page(ClusterQuery())

    for cluster in page.clusters:
        assert not {"password", "token_secret", "secret", "secret_token", "credentials"} & set(
            cluster
        )
        for secret in ("hunter2-Ünïcode", "5f1c0d9e-8b7a-6f5e-4d3c"):
            assert_secret_absent(secret, repr(cluster), "a listed cluster")


def test_pages_walk_the_list_in_order_and_count_every_cluster(repository: AutoCommit) -> None:
    fleet = _fleet(repository)

    pages = [repository.repository.page(ClusterQuery(limit=10, offset=o)) for o in (0, 10, 20)]

    assert [page.total for page in pages] == [23, 23, 23]
    assert [len(page.clusters) for page in pages] == [10, 10, 3]
    assert [name for page in pages for name in _names(page)] == [c.name for c in fleet]
    assert [(page.has_previous, page.has_next) for page in pages] == [
        (False, True),
        (True, True),
        (True, False),
    ]


def test_the_default_page_is_the_first_hundred(repository: AutoCommit) -> None:
    clusters = [make_cluster(f"c-{i:03d}") for i in range(101)]
    for cluster in clusters:
        repository.add(cluster)

    page = repository.repository.page(ClusterQuery())

    assert _names(page) == [f"c-{i:03d}" for i in range(100)]
    assert (page.total, page.has_next) == (101, True)


def test_a_page_past_the_end_is_empty_and_still_counts(repository: AutoCommit) -> None:
    _fleet(repository)

    page = repository.repository.page(ClusterQuery(limit=5, offset=40))

    assert (list(page.clusters), page.total) == ([], 23)
    assert (page.has_previous, page.has_next) == (True, False)


def test_a_page_without_limit_holds_every_match(repository: AutoCommit) -> None:
    fleet = _fleet(repository)

    page = repository.repository.page(ClusterQuery(limit=None, offset=3))

    assert _names(page) == [c.name for c in fleet[3:]]
    assert page.total == 23


@pytest.mark.parametrize(
    "statuses",
    [
        {ClusterStatus.HEALTHY},
        {ClusterStatus.DEGRADED, ClusterStatus.UNKNOWN},
        set(ClusterStatus),
    ],
    ids=["one", "two", "all"],
)
def test_page_filters_by_status_and_counts_the_matches(
    repository: AutoCommit, statuses: set[ClusterStatus]
) -> None:
    fleet = _fleet(repository)
    matching = [c.name for c in fleet if c.status in statuses]

    first = repository.repository.page(ClusterQuery(limit=4, statuses=frozenset(statuses)))
    rest = repository.repository.page(
        ClusterQuery(limit=None, offset=4, statuses=frozenset(statuses))
    )

    assert _names(first) + _names(rest) == matching
    assert first.total == rest.total == len(matching)


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        ("NODE-1", ["node-10", "Node-11", "node-12"]),  # any case, part of the name
        ("rack2.", ["node-02", "Node-05", "node-08", "Node-11"]),  # part of the endpoint
        ("PVE03", ["Node-03"]),  # the endpoint's case does not matter either
        ("-0", [f"{'Node' if i % 2 else 'node'}-{i:02d}" for i in range(10)]),
        ("nothing-like-it", []),
    ],
)
def test_page_searches_names_and_endpoints_case_insensitively(
    repository: AutoCommit, search: str, expected: list[str]
) -> None:
    _fleet(repository, count=13)

    page = repository.repository.page(ClusterQuery(search=search))

    assert _names(page) == expected
    assert page.total == len(expected)


@pytest.mark.parametrize(
    ("stored", "search"),
    [
        ("Straße-Nord", "STRASSE"),  # casefold, not lower
        ("ΣΊΣΥΦΟΣ-lab", "σίσυφος"),
        ("ﬃ-lab", "FFI"),
        ("prod_eu", "d_e"),  # LIKE's wildcards are plain characters here
        ("100%-up", "0%-"),
        ("back\\slash", "k\\s"),
    ],
)
def test_page_search_folds_case_as_names_do_and_takes_wildcards_literally(
    repository: AutoCommit, stored: str, search: str
) -> None:
    repository.add(make_cluster(stored))
    repository.add(make_cluster("prodXeu"))
    repository.add(make_cluster("1000-up"))
    repository.add(make_cluster("backslash"))

    assert _names(repository.repository.page(ClusterQuery(search=search))) == [stored]


def test_page_search_finds_an_endpoint_stored_with_capitals(repository: AutoCommit) -> None:
    cluster = make_cluster("lab", api_endpoint="https://PVE-Lab.Example.com:8006")
    repository.add(cluster)
    repository.add(make_cluster("other"))

    assert _names(repository.repository.page(ClusterQuery(search="pve-lab.EXAMPLE"))) == ["lab"]


@pytest.mark.parametrize(("stored_name", "asked_name"), NAME_CASE_VARIANTS)
def test_page_by_name_matches_the_whole_name_as_uniqueness_does(
    repository: AutoCommit, stored_name: str, asked_name: str
) -> None:
    repository.add(make_cluster(stored_name))
    repository.add(make_cluster(f"{stored_name}-2"))

    page = repository.repository.page(ClusterQuery(name=asked_name))

    assert (_names(page), page.total) == ([stored_name], 1)
    assert list(repository.repository.page(ClusterQuery(name=stored_name[:-1])).clusters) == []


def test_page_filters_combine(repository: AutoCommit) -> None:
    fleet = _fleet(repository)
    expected = [
        c.name for c in fleet if c.status is ClusterStatus.HEALTHY and "rack1" in c.api_endpoint
    ]

    page = repository.repository.page(
        ClusterQuery(limit=1, statuses=frozenset({ClusterStatus.HEALTHY}), search="RACK1")
    )

    assert _names(page) == expected[:1]
    assert page.total == len(expected) and len(expected) > 1
    named = repository.repository.page(
        ClusterQuery(name=expected[0], statuses=frozenset({ClusterStatus.UNKNOWN}))
    )
    assert (list(named.clusters), named.total) == ([], 0)


def test_page_follows_every_kind_of_write(repository: AutoCommit) -> None:
    clusters = {name: make_cluster(name) for name in ("delta", "Bravo", "charlie")}
    for cluster in clusters.values():
        repository.add(cluster)
    healthy = ClusterQuery(statuses=frozenset({ClusterStatus.HEALTHY}))
    assert _names(repository.repository.page(healthy)) == ["Bravo", "charlie", "delta"]

    repository.delete(clusters["charlie"].id)
    echo = clusters["delta"].reconfigured(at=NOW, name="Echo")
    repository.update(echo)
    repository.record_check(
        clusters["Bravo"].observed(at=LATER, status=ClusterStatus.UNHEALTHY, last_error="gone")
    )

    assert _names(repository.repository.page(healthy)) == ["Echo"]
    unhealthy = repository.repository.page(
        ClusterQuery(statuses=frozenset({ClusterStatus.UNHEALTHY}))
    )
    assert [(c["name"], c["last_error"], c["updated_at"]) for c in unhealthy.clusters] == [
        ("Bravo", "gone", rfc3339(LATER))
    ]
    assert repository.repository.page(ClusterQuery(name="echo")).clusters[0]["version"] == 2


def test_committed_pages_follow_every_kind_of_write(shared_repository: AutoCommit) -> None:
    """The same with committed writes, read outside any transaction: where a
    backend keeps what it listed (PostgreSQL's cache of public forms), each
    write must still show on the next page."""
    clusters = {name: make_cluster(name) for name in ("delta", "Bravo", "charlie")}
    for cluster in clusters.values():
        shared_repository.add(cluster)
    everything = ClusterQuery()
    before = shared_repository.repository.page(everything)
    assert _names(before) == ["Bravo", "charlie", "delta"]

    shared_repository.delete(clusters["charlie"].id)
    echo = clusters["delta"].reconfigured(at=NOW, name="Echo")
    shared_repository.update(echo)
    checked = clusters["Bravo"].observed(at=NOW, status=ClusterStatus.UNHEALTHY)
    shared_repository.record_check(checked)
    shared_repository.add(make_cluster("alpha"))

    after = shared_repository.repository.page(everything)
    assert _names(after) == ["alpha", "Bravo", "Echo"]
    assert after.clusters[1] == public_cluster(checked)
    assert after.clusters[2] == public_cluster(echo)
    assert before.clusters[0]["status"] == "healthy"  # a page handed out stays as it was


# -- update: a new version of the configuration -------------------------------------------------


def test_update_stores_the_next_version_with_every_configuration_field(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    token = token_cluster()
    edited = cluster.reconfigured(
        at=LATER,
        name="Prod-EU-renamed",
        api_endpoint="https://[2001:db8::1]:8443",
        credentials=token.credentials,
        verify_tls=False,
        fingerprint=token.fingerprint,
    )

    repository.update(edited)

    stored = repository.find_by_id(cluster.id)
    assert stored == edited
    assert stored.version == 2 and stored.updated_at == LATER
    assert stored.credentials.secret.reveal() == token.credentials.secret.reveal()
    assert repository.find_by_name("prod-eu-renamed") == edited
    assert repository.find_by_name("Prod-EU") is None


def test_update_based_on_a_stale_version_is_refused_and_changes_nothing(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    repository.update(cluster.reconfigured(at=LATER, name="first-edit"))

    with pytest.raises(StaleCluster) as raised:
        repository.update(cluster.reconfigured(at=LATER, name="second-edit"))

    assert raised.value.expected_version == 1
    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.version) == ("first-edit", 2)
    assert repository.find_by_name("second-edit") is None


@pytest.mark.parametrize(
    "write",
    [
        lambda repository, cluster: repository.update(
            cluster.reconfigured(at=LATER, verify_tls=False)
        ),
        lambda repository, cluster: repository.record_check(_checked(cluster)),
    ],
    ids=["update", "record_check"],
)
def test_a_write_to_a_deleted_cluster_raises_and_does_not_bring_it_back(
    repository: AutoCommit, write: Callable[[AutoCommit, Cluster], None]
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        write(repository, cluster)

    assert not repository.exists(cluster.id)
    assert repository.find_by_name(cluster.name) is None
    assert list(repository.list()) == []


def test_update_refuses_a_rename_onto_another_clusters_name(repository: AutoCommit) -> None:
    first, second = make_cluster("Prod-EU"), make_cluster("Prod-US")
    repository.add(first)
    repository.add(second)

    with pytest.raises(ClusterNameTaken):
        repository.update(second.reconfigured(at=LATER, name="PROD-eu"))

    assert repository.find_by_id(second.id) == second
    assert repository.find_by_name("prod-eu") == first


def test_update_may_change_the_case_of_a_clusters_own_name(repository: AutoCommit) -> None:
    cluster = make_cluster("prod-eu")
    repository.add(cluster)
    renamed = cluster.reconfigured(at=LATER, name="Prod-EU")

    repository.update(renamed)

    assert repository.find_by_name("PROD-EU") == renamed


def test_update_frees_the_previous_name(repository: AutoCommit) -> None:
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)
    repository.update(cluster.reconfigured(at=LATER, name="Prod-EU-old"))

    newcomer = make_cluster("prod-eu")
    repository.add(newcomer)

    assert repository.find_by_name("PROD-EU") == newcomer


# -- record_check: observations, conditional on the configuration checked -----------------------


def _checked(cluster: Cluster) -> Cluster:
    return cluster.observed(
        at=LATER,
        status=ClusterStatus.DEGRADED,
        proxmox_version="8.3.0",
        node_count=5,
        last_error="node pve3 offline",
    )


def test_record_check_stores_the_observations_and_keeps_the_version(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)

    repository.record_check(_checked(cluster))

    stored = repository.find_by_id(cluster.id)
    assert stored == _checked(cluster)
    assert stored.version == cluster.version
    assert (stored.last_checked_at, stored.updated_at) == (LATER, LATER)


def test_record_check_never_writes_configuration(repository: AutoCommit) -> None:
    """Only the observation fields are written: a check that carried a
    different name (a bug) still cannot rename the cluster."""
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)

    repository.record_check(replace(_checked(cluster), name="Hijacked", verify_tls=False))

    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.verify_tls) == ("Prod-EU", True)
    assert stored.status is ClusterStatus.DEGRADED


def test_record_check_after_an_edit_is_dropped_and_the_edit_survives(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    edited = cluster.reconfigured(at=LATER, name="edited-meanwhile")
    repository.update(edited)

    with pytest.raises(StaleCluster):
        repository.record_check(_checked(cluster))

    assert repository.find_by_id(cluster.id) == edited


def test_a_check_never_makes_an_editors_version_stale(repository: AutoCommit) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    read_by_editor = repository.find_by_id(cluster.id)

    repository.record_check(_checked(cluster))
    repository.update(read_by_editor.reconfigured(at=LATER, name="edited"))

    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.version) == ("edited", 2)


# -- delete and exists --------------------------------------------------------------------------


def test_delete_removes_the_cluster_from_every_lookup(repository: AutoCommit) -> None:
    cluster, other = make_cluster("Prod-EU"), make_cluster("Prod-US")
    repository.add(cluster)
    repository.add(other)

    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        repository.find_by_id(cluster.id)
    assert repository.find_by_name("prod-eu") is None
    assert not repository.exists(cluster.id)
    assert list(repository.list()) == [other]


def test_delete_frees_the_name(repository: AutoCommit) -> None:
    cluster = make_cluster("Prod-EU")
    repository.add(cluster)
    repository.delete(cluster.id)

    again = make_cluster("PROD-EU")
    repository.add(again)

    assert repository.find_by_name("prod-eu") == again


def test_delete_raises_cluster_not_found_for_an_unknown_or_deleted_id(
    repository: AutoCommit,
) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    repository.delete(cluster.id)

    with pytest.raises(ClusterNotFound):
        repository.delete(cluster.id)
    with pytest.raises(ClusterNotFound):
        repository.delete(uuid.uuid4())


def test_exists_tells_stored_from_unknown_ids(repository: AutoCommit) -> None:
    cluster = make_cluster()
    repository.add(cluster)

    assert repository.exists(cluster.id)
    assert not repository.exists(uuid.uuid4())


# -- concurrency --------------------------------------------------------------------------------

CONTENDERS = 16


def _race(repository: AutoCommit, clusters: list[Cluster]) -> list[str]:
    """Save every cluster from its own thread, all released at once."""
    start = threading.Barrier(len(clusters))

    def save(cluster: Cluster) -> str:
        try:
            start.wait(timeout=10)
            repository.add(cluster)
            return "saved"
        except ClusterNameTaken:
            return "taken"
        finally:
            # Each thread opened its own database connection; a connection
            # left open would keep the test database from being dropped.
            connections.close_all()

    with ThreadPoolExecutor(max_workers=len(clusters)) as pool:
        return list(pool.map(save, clusters))


def test_concurrent_saves_of_one_name_store_exactly_one(
    shared_repository: AutoCommit,
) -> None:
    spellings = ["Race", "race", "RACE", "rAcE"]
    contenders = [make_cluster(spellings[i % len(spellings)]) for i in range(CONTENDERS)]

    outcomes = _race(shared_repository, contenders)

    assert sorted(outcomes) == ["saved"] + ["taken"] * (CONTENDERS - 1)
    winner = contenders[outcomes.index("saved")]
    assert list(shared_repository.list()) == [winner]
    assert shared_repository.find_by_name("RACE") == winner


def test_concurrent_saves_of_different_names_all_succeed(
    shared_repository: AutoCommit,
) -> None:
    contenders = [make_cluster(f"node-{i:02d}") for i in range(CONTENDERS)]

    outcomes = _race(shared_repository, contenders)

    assert outcomes == ["saved"] * CONTENDERS
    assert [c.name for c in shared_repository.list()] == memory_order(contenders)


def test_concurrent_edits_from_one_version_let_exactly_one_win(
    shared_repository: AutoCommit,
) -> None:
    """Optimistic concurrency: every editor read version 1; the version in
    the write's condition lets the first through and refuses the rest."""
    cluster = make_cluster("contested")
    shared_repository.add(cluster)
    start = threading.Barrier(CONTENDERS)

    def edit(number: int) -> str:
        try:
            start.wait(timeout=10)
            shared_repository.update(cluster.reconfigured(at=NOW, name=f"edit-{number:02d}"))
            return "won"
        except StaleCluster:
            return "stale"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=CONTENDERS) as pool:
        outcomes = list(pool.map(edit, range(CONTENDERS)))

    assert sorted(outcomes) == ["stale"] * (CONTENDERS - 1) + ["won"]
    stored = shared_repository.find_by_id(cluster.id)
    assert stored.name == f"edit-{outcomes.index('won'):02d}"
    assert stored.version == 2


def _database_url(alias: str) -> str:
    config = connections[alias].settings_dict
    if config["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{config['NAME']}"
    host, port, user = config["HOST"] or "127.0.0.1", config["PORT"] or 5432, config["USER"]
    return f"postgres://{user}@{host}:{port}/{config['NAME']}"


@pytest.fixture(
    params=[backend_param(backend, transaction=True) for backend in BACKENDS if backend != "memory"]
)
def shared_database(request: pytest.FixtureRequest) -> tuple[str, AutoCommit]:
    """A database backend with committed writes, and the alias it is on."""
    return ALIASES[request.param], AutoCommit(units_of_work(request.param))


def test_concurrent_edits_from_two_processes_let_exactly_one_win(
    shared_database: tuple[str, AutoCommit],
) -> None:
    """The same race between two processes sharing the database (an in-memory
    store is per process, so this contract is the database backends')."""
    alias, repository = shared_database
    cluster = make_cluster("contested")
    repository.add(cluster)
    environment = {**os.environ, "DATABASE_URL": _database_url(alias)}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.integration.edit_race_worker", str(cluster.id), name],
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("edit-by-one", "edit-by-two")
    ]
    # Both have read version 1 before either may write: no clock decides it.
    assert [worker.stdout.readline().strip() for worker in workers] == ["ready", "ready"]
    for worker in workers:  # then both at once
        worker.stdin.write("go\n")
        worker.stdin.flush()
    outcomes = [worker.communicate(timeout=60)[0].strip() for worker in workers]

    assert sorted(outcomes) == ["stale", "won"]
    stored = repository.find_by_id(cluster.id)
    assert stored.name == ("edit-by-one", "edit-by-two")[outcomes.index("won")]
    assert stored.version == 2


# -- the unit of work ---------------------------------------------------------------------------


def test_writes_are_discarded_unless_the_unit_of_work_commits(repository: AutoCommit) -> None:
    cluster = make_cluster()

    with repository.unit_of_work() as uow:
        uow.clusters.add(cluster)

    assert not repository.exists(cluster.id)
    assert repository.find_by_name(cluster.name) is None
    assert list(repository.list()) == []


def test_a_failure_inside_a_unit_of_work_discards_every_write_it_made(
    repository: AutoCommit,
) -> None:
    kept, gone = make_cluster("kept"), make_cluster("gone")
    repository.add(kept)
    repository.add(gone)
    newcomer = make_cluster("newcomer")

    with pytest.raises(ClusterNameTaken), repository.unit_of_work() as uow:
        uow.clusters.add(newcomer)
        uow.clusters.update(kept.reconfigured(at=NOW, name="renamed"))
        uow.clusters.record_check(gone.observed(at=NOW, status=ClusterStatus.UNHEALTHY))
        uow.clusters.delete(gone.id)
        uow.clusters.add(make_cluster("NEWCOMER"))  # taken by this unit's first write
        uow.commit()

    assert not repository.exists(newcomer.id)
    assert repository.find_by_id(kept.id) == kept
    assert repository.find_by_id(gone.id) == gone
    assert [c.name for c in repository.list()] == ["gone", "kept"]


def test_committed_writes_of_a_unit_of_work_are_kept_together(repository: AutoCommit) -> None:
    first, second = make_cluster("first"), make_cluster("second")
    repository.add(second)

    with repository.unit_of_work() as uow:
        uow.clusters.add(first)
        uow.clusters.update(second.reconfigured(at=NOW, name="second-renamed"))
        uow.commit()

    assert [c.name for c in repository.list()] == ["first", "second-renamed"]
    assert repository.find_by_id(second.id).version == 2


def test_writes_outside_a_unit_of_work_are_refused(shared_repository: AutoCommit) -> None:
    cluster = make_cluster()
    shared_repository.add(cluster)
    outside = shared_repository.repository

    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.add(make_cluster("other"))
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.update(cluster.reconfigured(at=NOW, name="renamed"))
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.record_check(cluster.observed(at=NOW, status=ClusterStatus.UNHEALTHY))
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        outside.delete(cluster.id)
    assert list(shared_repository.list()) == [cluster]


# -- the audit log ------------------------------------------------------------------------------


def _event(number: int, **fields: Any) -> AuditEvent:
    cluster = make_cluster(f"cluster-{number}")
    return replace(
        AuditEvent.success(
            AuditAction.CLUSTER_REGISTER,
            actor=Actor("operator", source_ip="::1"),
            at=NOW,  # one timestamp for all: the order must not depend on it
            cluster=cluster,
            changes={"name": [None, cluster.name], "password": SECRET_CHANGED},
        ),
        **fields,
    )


def test_audit_events_come_back_newest_first_field_for_field(repository: AutoCommit) -> None:
    appended = [_event(number) for number in range(5)]
    for event in appended:
        with repository.unit_of_work() as uow:
            uow.audit.append(event)
            uow.commit()

    assert list(repository.unit_of_work().audit.list()) == appended[::-1]


def test_an_audit_event_is_kept_or_discarded_with_its_unit_of_work(repository: AutoCommit) -> None:
    cluster = make_cluster()
    with repository.unit_of_work() as uow:
        uow.clusters.add(cluster)
        uow.audit.append(_event(1, cluster_id=cluster.id))
    with pytest.raises(ClusterNameTaken), repository.unit_of_work() as uow:
        uow.audit.append(_event(2))
        uow.clusters.add(make_cluster("a"))
        uow.clusters.add(make_cluster("A"))
        uow.commit()

    assert list(repository.unit_of_work().audit.list()) == []
    assert list(repository.list()) == []


def test_audit_events_are_appended_only_inside_a_unit_of_work(
    shared_repository: AutoCommit,
) -> None:
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        shared_repository.unit_of_work().audit.append(_event(1))
    assert list(shared_repository.unit_of_work().audit.list()) == []


def _append(repository: AutoCommit, *events: AuditEvent) -> None:
    for event in events:
        with repository.unit_of_work() as uow:
            uow.audit.append(event)
            uow.commit()


def _mixed_log() -> list[AuditEvent]:
    """Eight events, oldest first: two actors, two clusters, every outcome,
    an hour apart."""
    prod, lab = make_cluster("prod"), make_cluster("lab")
    events = []
    for number in range(8):
        cluster = prod if number % 2 == 0 else lab
        events.append(
            _event(
                number,
                at=NOW + timedelta(hours=number),
                actor="alice" if number < 4 else "bob",
                action=AuditAction.CLUSTER_REFRESH if number % 3 == 0 else AuditAction.CLUSTER_EDIT,
                outcome=Outcome.FAILURE if number in (2, 5) else Outcome.SUCCESS,
                status_code=502 if number in (2, 5) else 200,
                cluster_id=cluster.id,
                cluster_name=cluster.name,
            )
        )
    return events


AUDIT_FILTERS: list[tuple[str, Callable[[list[AuditEvent]], AuditQuery], list[int]]] = [
    ("everything", lambda log: AuditQuery(), [7, 6, 5, 4, 3, 2, 1, 0]),
    ("action", lambda log: AuditQuery(action=AuditAction.CLUSTER_REFRESH), [6, 3, 0]),
    ("outcome", lambda log: AuditQuery(outcome=Outcome.FAILURE), [5, 2]),
    ("actor", lambda log: AuditQuery(actor="bob"), [7, 6, 5, 4]),
    ("actor, exactly", lambda log: AuditQuery(actor="BOB"), []),
    ("cluster id", lambda log: AuditQuery(cluster_id=log[1].cluster_id), [7, 5, 3, 1]),
    ("cluster name", lambda log: AuditQuery(cluster_name="prod"), [6, 4, 2, 0]),
    ("since, inclusive", lambda log: AuditQuery(since=log[5].at), [7, 6, 5]),
    ("until, exclusive", lambda log: AuditQuery(until=log[2].at), [1, 0]),
    (
        "every filter at once",
        lambda log: AuditQuery(
            actor="alice", cluster_name="prod", since=log[1].at, until=log[7].at
        ),
        [2],
    ),
]


@pytest.mark.parametrize(
    ("query", "expected"),
    [pytest.param(query, expected, id=name) for name, query, expected in AUDIT_FILTERS],
)
def test_an_audit_query_selects_by_each_filter_newest_first(
    repository: AutoCommit,
    query: Callable[[list[AuditEvent]], AuditQuery],
    expected: list[int],
) -> None:
    log = _mixed_log()
    _append(repository, *log)

    page = repository.unit_of_work().audit.query(query(log))

    assert list(page.events) == [log[number] for number in expected]
    assert page.total == len(expected)


def test_an_audit_query_pages_with_limit_and_offset_and_counts_every_match(
    repository: AutoCommit,
) -> None:
    log = _mixed_log()
    _append(repository, *log)
    audit = repository.unit_of_work().audit

    pages = [audit.query(AuditQuery(limit=3, offset=offset)) for offset in (0, 3, 6, 9)]

    assert [list(page.events) for page in pages] == [log[7:4:-1], log[4:1:-1], log[1::-1], []]
    assert {page.total for page in pages} == {8}
    filtered = audit.query(AuditQuery(actor="alice", limit=1, offset=1))
    assert (list(filtered.events), filtered.total) == ([log[2]], 4)


def test_the_audit_query_order_is_the_append_order_not_the_timestamp(
    repository: AutoCommit,
) -> None:
    late, early = _event(1, at=NOW + timedelta(hours=1)), _event(2, at=NOW)
    _append(repository, late, early)

    assert list(repository.unit_of_work().audit.query(AuditQuery()).events) == [early, late]


def test_an_audit_query_refuses_a_page_out_of_bounds() -> None:
    for bounds in ({"limit": 0}, {"limit": AUDIT_PAGE_MAX + 1}, {"offset": -1}):
        with pytest.raises(ValueError, match="limit|offset"):
            AuditQuery(**bounds)  # type: ignore[arg-type]


def test_purge_removes_exactly_the_events_before_the_cut_and_says_how_many(
    repository: AutoCommit,
) -> None:
    log = _mixed_log()
    _append(repository, *log)

    with repository.unit_of_work() as uow:
        removed = uow.audit.purge(log[3].at)
        uow.commit()

    assert removed == 3
    assert list(repository.unit_of_work().audit.list()) == log[:2:-1]
    with repository.unit_of_work() as uow:
        assert uow.audit.purge(log[3].at) == 0
        uow.commit()


def test_a_purge_is_undone_with_its_unit_of_work_and_later_appends_survive_it(
    repository: AutoCommit,
) -> None:
    log = _mixed_log()
    _append(repository, *log[:4])
    with pytest.raises(ClusterNameTaken), repository.unit_of_work() as uow:
        uow.audit.append(log[4])
        assert uow.audit.purge(log[7].at) == 5
        uow.audit.append(log[5])
        uow.clusters.add(make_cluster("a"))
        uow.clusters.add(make_cluster("A"))
        uow.commit()

    assert list(repository.unit_of_work().audit.list()) == log[3::-1]


def test_audit_events_are_purged_only_inside_a_unit_of_work(
    shared_repository: AutoCommit,
) -> None:
    _append(shared_repository, _event(1))
    with pytest.raises(RuntimeError, match="inside a unit of work"):
        shared_repository.unit_of_work().audit.purge(NOW + timedelta(days=1))
    assert len(shared_repository.unit_of_work().audit.list()) == 1


# -- editing and trust (docs/product-contract.md §9) --------------------------------------------


def test_an_edit_stores_the_configuration_only_and_keeps_a_checks_findings(
    repository: AutoCommit,
) -> None:
    """An editor read the cluster before a check recorded its findings; the
    edit must not put the findings it read back."""
    cluster = make_cluster()
    repository.add(cluster)
    read_by_editor = repository.find_by_id(cluster.id)
    repository.record_check(_checked(cluster))

    repository.update(read_by_editor.reconfigured(at=LATER, name="edited", verify_tls=False))

    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.verify_tls, stored.version) == ("edited", False, 2)
    assert (stored.status, stored.node_count, stored.last_error) == (
        ClusterStatus.DEGRADED,
        5,
        "node pve3 offline",
    )


def test_an_edit_and_the_findings_of_its_proof_are_stored_together(repository: AutoCommit) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    edited = cluster.reconfigured(at=LATER, fingerprint="CD:" * 31 + "CD")
    with repository.unit_of_work() as uow:
        uow.clusters.update(edited)
        uow.clusters.record_check(edited.observed(at=LATER, status=ClusterStatus.UNKNOWN))
        uow.commit()
    stored = repository.find_by_id(cluster.id)
    assert (stored.fingerprint, stored.status, stored.version) == (
        edited.fingerprint,
        ClusterStatus.UNKNOWN,
        2,
    )


def test_the_last_errors_details_are_an_observation(repository: AutoCommit) -> None:
    cluster = make_cluster()
    repository.add(cluster)
    observed = {"fingerprint": "12:" * 31 + "12"}
    repository.record_check(
        cluster.observed(
            at=LATER, status=ClusterStatus.UNHEALTHY, last_error="pin", last_error_details=observed
        )
    )
    assert repository.find_by_id(cluster.id).last_error_details == observed
    repository.record_check(cluster.observed(at=LATER, last_error=None, last_error_details=None))
    assert repository.find_by_id(cluster.id).last_error_details is None


def test_a_token_the_registry_created_is_remembered_as_such(repository: AutoCommit) -> None:
    token = token_cluster()
    created = replace(
        token,
        credentials=replace(token.credentials, created_by_registry=True),
    )
    repository.add(created)
    repository.add(make_cluster("brought", credentials=token.credentials))
    assert repository.find_by_id(created.id).credentials.created_by_registry is True
    assert repository.find_by_name("brought").credentials.created_by_registry is False
    edited = created.reconfigured(at=LATER, credentials=token.credentials)
    repository.update(edited)
    assert repository.find_by_id(created.id).credentials.created_by_registry is False
