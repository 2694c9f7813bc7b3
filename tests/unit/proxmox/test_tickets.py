"""Kept PVE tickets (clusters/proxmox/tickets.py) and the client's
``check`` that uses them (clusters/proxmox/client.py), against
requests-mock with PVE's answers and a fake clock: reuse, renewal by posting
the ticket as the password, one fresh login after a refused ticket, tokens
that never log in, and a check's overall deadline."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs

import pytest
import requests_mock

from clusters.domain import (
    ConnectionTarget,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxUnreachable,
    Secret,
)
from clusters.proxmox import NetworkPolicy, ProxmoxClient
from clusters.proxmox.tickets import Ticket, TicketCache
from clusters.proxmox.tls import fetch_server_fingerprint
from clusters.proxmox.transport import Deadline, Transport
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent
from tests.unit.proxmox.conftest import (
    LOGIN_PATH,
    PASSWORD,
    PASSWORD_CREDENTIALS,
    TARGET,
    TOKEN_CREDENTIALS,
    messages,
)

MINUTE = 60.0
RENEWED_TICKET = "PVE:root@pam:6745B000::UmVuZXdlZFRpY2tldFNpZ25hdHVyZQ=="
RENEWED_CSRF = "6745B000:UmVuZXdlZENzcmY"


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def ticket(value: str = pve.TICKET) -> Ticket:
    return Ticket("root@pam", Secret(value), Secret(pve.CSRF_TOKEN))


# -- the cache -----------------------------------------------------------------------------


def test_a_kept_ticket_is_used_then_renewed_then_given_up_before_it_ends():
    clock = FakeMonotonic()
    cache = TicketCache(clock=clock)
    key = cache.key(TARGET, PASSWORD_CREDENTIALS)
    cache.keep(key, ticket())

    clock.advance(104 * MINUTE)
    assert cache.get(key).renew is False  # type: ignore[union-attr]
    clock.advance(1 * MINUTE)
    kept = cache.get(key)
    assert kept is not None and kept.renew and kept.ticket == ticket()
    clock.advance(13 * MINUTE)  # 118 minutes: too close to the two hours
    assert cache.get(key) is None
    assert len(cache) == 0


@pytest.mark.parametrize(
    ("target", "credentials"),
    [
        (ConnectionTarget("https://other.example.com:8006"), PASSWORD_CREDENTIALS),
        (ConnectionTarget(pve.ENDPOINT, verify_tls=False), PASSWORD_CREDENTIALS),
        (ConnectionTarget(pve.ENDPOINT, fingerprint=":".join(["AB"] * 32)), PASSWORD_CREDENTIALS),
        (TARGET, PasswordCredentials("root@pam", Secret("a changed password"))),
        (TARGET, PasswordCredentials("monitor@pve", Secret(PASSWORD))),
    ],
    ids=["endpoint", "verify_tls", "pin", "password", "user"],
)
def test_another_endpoint_trust_user_or_password_never_finds_a_kept_ticket(target, credentials):
    cache = TicketCache()
    cache.keep(cache.key(TARGET, PASSWORD_CREDENTIALS), ticket())
    assert cache.get(cache.key(target, credentials)) is None
    assert cache.get(cache.key(TARGET, PASSWORD_CREDENTIALS)) is not None


def test_keys_mean_nothing_outside_their_process_and_hold_no_password():
    one, other = TicketCache(), TicketCache()
    key = one.key(TARGET, PASSWORD_CREDENTIALS)
    assert key != other.key(TARGET, PASSWORD_CREDENTIALS)
    assert PASSWORD.encode() not in key


def test_tickets_show_no_secret_in_a_repr():
    cache = TicketCache()
    cache.keep(cache.key(TARGET, PASSWORD_CREDENTIALS), ticket())
    for text in (repr(cache), repr(ticket()), str(ticket())):
        assert_secret_absent(pve.TICKET, text, "a repr")
        assert_secret_absent(pve.CSRF_TOKEN, text, "a repr")


def test_unusable_tickets_are_dropped_as_new_ones_come():
    clock = FakeMonotonic()
    cache = TicketCache(clock=clock)
    for number in range(64):
        cache.keep(number.to_bytes(2, "big"), ticket())
    clock.advance(120 * MINUTE)
    cache.keep(b"fresh", ticket())
    assert len(cache) == 1


# -- checks with a kept ticket ---------------------------------------------------------------


def reads(m: requests_mock.Mocker) -> None:
    pve.version(m)
    pve.cluster_status(m, pve.three_node_cluster())
    pve.nodes(m, pve.three_nodes())


def posts(m: requests_mock.Mocker) -> list[dict[str, list[str]]]:
    return [
        parse_qs(r.text) for r in m.request_history if (r.method, r.path) == ("POST", LOGIN_PATH)
    ]


def cookies(m: requests_mock.Mocker) -> set[str]:
    return {r.headers.get("Cookie", "") for r in m.request_history if r.method == "GET"}


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def checker(clock: FakeMonotonic) -> ProxmoxClient:
    return ProxmoxClient(parallel=False, tickets=TicketCache(clock=clock))


def test_the_first_check_logs_in_and_the_next_ones_reuse_its_ticket(m, checker):
    pve.login_ok(m)
    reads(m)

    for _ in range(3):
        report = checker.check(TARGET, PASSWORD_CREDENTIALS)

    assert report.version == "8.2.4" and len(report.nodes or ()) == 3
    assert [post["password"] for post in posts(m)] == [[PASSWORD]]
    assert cookies(m) == {f"PVEAuthCookie={pve.TICKET}"}
    assert len(m.request_history) == 1 + 3 * 3


def test_a_ticket_near_its_end_is_renewed_by_posting_it_as_the_password(m, checker, clock):
    m.post(
        f"{pve.API}/access/ticket",
        [
            {"json": {"data": {"username": "root@pam", "ticket": pve.TICKET,
                               "CSRFPreventionToken": pve.CSRF_TOKEN}}},
            {"json": {"data": {"username": "root@pam", "ticket": RENEWED_TICKET,
                               "CSRFPreventionToken": RENEWED_CSRF}}},
        ],
    )  # fmt: skip
    reads(m)
    checker.check(TARGET, PASSWORD_CREDENTIALS)

    clock.advance(106 * MINUTE)
    checker.check(TARGET, PASSWORD_CREDENTIALS)
    clock.advance(1 * MINUTE)
    checker.check(TARGET, PASSWORD_CREDENTIALS)

    assert posts(m) == [
        {"username": ["root@pam"], "password": [PASSWORD]},
        {"username": ["root@pam"], "password": [pve.TICKET]},
    ]
    assert m.request_history[-1].headers["Cookie"] == f"PVEAuthCookie={RENEWED_TICKET}"


def test_a_refused_renewal_means_a_login_with_the_password(m, checker, clock):
    pve.login_ok(m)
    reads(m)
    checker.check(TARGET, PASSWORD_CREDENTIALS)
    m.post(
        f"{pve.API}/access/ticket",
        [
            {"status_code": 401, "reason": "authentication failure", "json": {"data": None}},
            {"json": {"data": {"username": "root@pam", "ticket": RENEWED_TICKET}}},
        ],
    )
    clock.advance(110 * MINUTE)

    checker.check(TARGET, PASSWORD_CREDENTIALS)

    assert [post["password"] for post in posts(m)] == [[PASSWORD], [pve.TICKET], [PASSWORD]]
    assert m.request_history[-1].headers["Cookie"] == f"PVEAuthCookie={RENEWED_TICKET}"


def test_a_ticket_refused_before_its_time_means_one_fresh_login(m, checker):
    pve.login_ok(m)
    reads(m)
    checker.check(TARGET, PASSWORD_CREDENTIALS)
    m.get(
        f"{pve.API}/version",
        [
            {"status_code": 401, "reason": "permission denied - invalid PVE ticket"},
            {"json": {"data": {"version": "8.2.4"}}},
        ],
    )

    assert checker.check(TARGET, PASSWORD_CREDENTIALS).version == "8.2.4"
    assert len(posts(m)) == 2


def test_a_login_refused_after_a_refused_ticket_fails_the_check_without_trying_again(
    m, checker, caplog
):
    pve.login_ok(m)
    reads(m)
    checker.check(TARGET, PASSWORD_CREDENTIALS)
    pve.ticket_refused(m)

    with caplog.at_level(logging.DEBUG), pytest.raises(ProxmoxAuthenticationFailed) as raised:
        checker.check(TARGET, PASSWORD_CREDENTIALS)

    assert len(posts(m)) == 2
    for secret in (pve.TICKET, pve.CSRF_TOKEN, PASSWORD):
        assert_secret_absent(secret, messages(raised.value), "the error")
        assert_secret_absent(secret, caplog.text, "the log")
    # The next check starts from the password again: the refused ticket is gone.
    pve.login_ok(m)
    reads(m)
    checker.check(TARGET, PASSWORD_CREDENTIALS)
    assert len(posts(m)) == 3


def test_token_clusters_never_log_in(m, checker):
    reads(m)
    for _ in range(3):
        checker.check(TARGET, TOKEN_CREDENTIALS)
    assert posts(m) == []
    assert len(checker.tickets) == 0


def test_a_registration_leaves_its_ticket_for_the_checks(m, checker):
    pve.login_ok(m)
    reads(m)
    checker.inspect(TARGET, PASSWORD_CREDENTIALS)
    checker.check(TARGET, PASSWORD_CREDENTIALS)
    assert len(posts(m)) == 1


# -- the check's deadline ---------------------------------------------------------------------


def transport() -> Transport:
    return Transport(
        connect_timeout=5,
        read_timeout=10,
        ca_bundle=None,
        max_response_bytes=1 << 20,
        fingerprint_fetcher=fetch_server_fingerprint,
        network_policy=NetworkPolicy(),
    )


def test_a_check_may_take_a_connect_and_two_reads_in_all():
    assert ProxmoxClient(connect_timeout=5, read_timeout=10).check_budget == 25


def test_no_call_starts_after_the_deadline(m):
    reads(m)
    past = Deadline(0.0, 25)
    with (
        transport().connect(TARGET, TOKEN_CREDENTIALS, deadline=past) as connection,
        pytest.raises(ProxmoxUnreachable) as raised,
    ):
        connection.call("GET", "/version")
    assert "longer than 25 s, the most a check may take" in raised.value.message
    assert m.request_history == []


def test_a_call_gets_no_more_than_the_time_left(m):
    reads(m)
    deadline = Deadline.after(2.0)
    with transport().connect(TARGET, TOKEN_CREDENTIALS, deadline=deadline) as connection:
        connection.call("GET", "/version")
    connect, read = m.last_request.timeout
    assert 0 < connect <= 2.0 and 0 < read <= 2.0


def test_a_fresh_login_proves_the_password_whatever_is_kept(m, checker):
    pve.login_ok(m)
    reads(m)
    checker.check(TARGET, PASSWORD_CREDENTIALS)
    checker.check(TARGET, PASSWORD_CREDENTIALS, fresh_login=True)
    checker.check(TARGET, PASSWORD_CREDENTIALS)
    assert [post["password"] for post in posts(m)] == [[PASSWORD], [PASSWORD]]
