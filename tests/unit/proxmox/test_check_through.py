"""``ProxmoxClient.check_through``: a check through a cluster's endpoints in
turn, on requests-mock with PVE's answers (docs/operations.md, "Endpoints
and failover")."""

from __future__ import annotations

import pytest
import requests

from clusters.domain import (
    ConnectionTarget,
    NetworkPolicyRefused,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxNoAnswer,
    ProxmoxTLSError,
)
from clusters.proxmox import transport
from tests import pve_responses as pve
from tests.unit.proxmox.conftest import PASSWORD_CREDENTIALS, TARGET, TOKEN_CREDENTIALS, client

NODE2 = ConnectionTarget("https://127.0.31.2:8006", fingerprint=":".join(["2A"] * 32))
NODE3 = ConnectionTarget("https://127.0.31.3:8006", fingerprint=":".join(["3A"] * 32))


def healthy(m, endpoint: str) -> None:
    pve.healthy_cluster(m, endpoint=endpoint)


def hosts(m) -> list[str]:
    return [f"{request.scheme}://{request.netloc}" for request in m.request_history]


def test_the_first_endpoint_that_answers_gives_the_report(m):
    pve.unreachable(m)
    healthy(m, NODE2.api_endpoint)
    healthy(m, NODE3.api_endpoint)

    attempts = client().check_through([TARGET, NODE2, NODE3], TOKEN_CREDENTIALS)

    assert attempts.answered == NODE2
    assert attempts.report is not None and attempts.report.version == "8.2.4"
    [(target, error)] = attempts.failed
    assert target == TARGET and isinstance(error, ProxmoxNoAnswer)
    assert NODE3.api_endpoint not in hosts(m)


def test_an_answer_unlike_pves_is_passed_over_too(m):
    healthy(m, TARGET.api_endpoint)
    m.get(f"{pve.API}/version", status_code=500, reason="Internal Server Error")
    healthy(m, NODE2.api_endpoint)

    attempts = client().check_through([TARGET, NODE2], TOKEN_CREDENTIALS)

    assert attempts.answered == NODE2
    assert isinstance(attempts.failed[0][1], ProxmoxBadResponse)


def test_refused_credentials_end_the_check_at_the_first_endpoint(m):
    pve.login_refused(m)
    healthy(m, NODE2.api_endpoint)

    with pytest.raises(ProxmoxAuthenticationFailed):
        client().check_through([TARGET, NODE2], PASSWORD_CREDENTIALS)

    assert NODE2.api_endpoint not in hosts(m)


def test_no_endpoint_answering_reports_each_failure_in_the_order_tried(m):
    for target in (TARGET, NODE2):
        pve.unreachable(m, endpoint=target.api_endpoint)
    m.get(f"{NODE3.api_endpoint}/api2/json/version", exc=requests.exceptions.SSLError("pin"))

    attempts = client(fingerprint_fetcher=lambda host, port, timeout: None).check_through(
        [TARGET, NODE2, NODE3], TOKEN_CREDENTIALS
    )

    assert (attempts.report, attempts.answered) == (None, None)
    assert [target for target, _ in attempts.failed] == [TARGET, NODE2, NODE3]
    assert isinstance(attempts.failed[2][1], ProxmoxTLSError)


def test_an_endpoint_the_network_policy_refuses_is_passed_over(m, monkeypatch):
    proxmox = client()
    healthy(m, NODE2.api_endpoint)
    real = proxmox._check_on

    def policy(target, *args):
        if target == TARGET:
            raise NetworkPolicyRefused(
                "The network policy refuses 127.0.31.1", address="127.0.31.1", rule="denied"
            )
        return real(target, *args)

    monkeypatch.setattr(proxmox, "_check_on", policy)

    attempts = proxmox.check_through([TARGET, NODE2], TOKEN_CREDENTIALS)

    assert attempts.answered == NODE2
    assert isinstance(attempts.failed[0][1], NetworkPolicyRefused)


def test_no_endpoint_is_started_once_the_check_budget_is_spent(m, monkeypatch):
    """Every endpoint shares one budget: a slow first endpoint that used it
    all leaves the others untried, so a claim on the cluster that outlasts
    one budget is never overtaken by this check."""
    now = [1000.0]
    monkeypatch.setattr(transport.time, "monotonic", lambda: now[0])
    proxmox = client(connect_timeout=1, read_timeout=2)

    def slow_then_gone(target, *args):
        now[0] += proxmox.check_budget + 0.1
        raise ProxmoxNoAnswer(f"Timed out connecting to {target.api_endpoint}")

    monkeypatch.setattr(proxmox, "_check_on", slow_then_gone)

    attempts = proxmox.check_through([TARGET, NODE2, NODE3], TOKEN_CREDENTIALS)

    assert [target for target, _ in attempts.failed] == [TARGET]
    assert attempts.report is None


def test_a_ticket_is_kept_for_each_endpoint_it_was_given_by(m):
    pve.unreachable(m)
    healthy(m, NODE2.api_endpoint)
    proxmox = client()

    proxmox.check_through([TARGET, NODE2], PASSWORD_CREDENTIALS)
    logins = sum(1 for r in m.request_history if r.method == "POST")
    proxmox.check_through([NODE2], PASSWORD_CREDENTIALS)

    assert sum(1 for r in m.request_history if r.method == "POST") == logins  # reused
