"""Fakes handed to ClusterService through its constructor."""

from __future__ import annotations

import hashlib
import ipaddress
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from clusters.domain import (
    CheckAttempts,
    ClusterError,
    ClusterStatusEntry,
    ConnectionTarget,
    Credentials,
    NodeEntry,
    PasswordCredentials,
    ProxmoxBadResponse,
    ProxmoxReport,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    Secret,
    TokenCredentials,
)
from clusters.services import CheckOutcome

HEALTHY_REPORT = ProxmoxReport(
    version="8.2.4",
    cluster_status=[
        ClusterStatusEntry("cluster", "prod", quorate=True),
        ClusterStatusEntry("node", "pve1", online=True, ip="127.0.31.1", local=True),
        ClusterStatusEntry("node", "pve2", online=True, ip="127.0.31.2"),
        ClusterStatusEntry("node", "pve3", online=True, ip="127.0.31.3"),
    ],
    nodes=[
        NodeEntry("pve1", "online", 0.5, 8, 1 << 30, 1 << 34, 3600, ":".join(["1A"] * 32)),
        NodeEntry("pve2", "online", 0.25, 8, 1 << 29, 1 << 34, 7200, ":".join(["2A"] * 32)),
        NodeEntry("pve3", "online", 0.0, 8, 1 << 28, 1 << 34, 60, ":".join(["3A"] * 32)),
    ],
)
DEGRADED_REPORT = ProxmoxReport(
    version="8.2.4",
    cluster_status=[
        ClusterStatusEntry("cluster", "prod", quorate=True),
        ClusterStatusEntry("node", "pve1", online=True, ip="127.0.31.1", local=True),
        ClusterStatusEntry("node", "pve2", online=True, ip="127.0.31.2"),
        ClusterStatusEntry("node", "pve3", online=False, ip="127.0.31.3"),
    ],
    nodes=[
        NodeEntry("pve1", "online", 0.5, 8, 1 << 30, 1 << 34, 3600, ":".join(["1A"] * 32)),
        NodeEntry("pve2", "online", 0.25, 8, 1 << 29, 1 << 34, 7200, ":".join(["2A"] * 32)),
        NodeEntry("pve3", "offline", ssl_fingerprint=":".join(["3A"] * 32)),
    ],
)


@dataclass
class FakeProxmox:
    """Answers ``inspect`` and ``check`` with a report, or raises an error;
    records calls (``calls`` both, ``checks`` the checks alone).

    Plays a cluster's API tokens too: ``issue_token`` makes one (kept in
    ``tokens`` until ``delete_token``), unless ``issue_error`` says Proxmox
    refuses; ``errors_for`` fails ``inspect`` for one principal only (a
    token that does not work, say).
    """

    report: ProxmoxReport = HEALTHY_REPORT
    error: Exception | None = None
    before_answer: Callable[[], None] | None = None
    calls: list[tuple[ConnectionTarget, Credentials]] = field(default_factory=list)
    checks: list[tuple[ConnectionTarget, Credentials]] = field(default_factory=list)
    fresh_logins: list[bool] = field(default_factory=list)  # per check: was one asked for?
    errors_for: dict[str, Exception] = field(default_factory=dict)
    issue_error: Exception | None = None
    delete_error: Exception | None = None
    tokens: dict[str, TokenCredentials] = field(default_factory=dict)
    unreachable: dict[str, ClusterError] = field(default_factory=dict)  # url -> its failure
    one_cluster: bool = False
    _first_host: str | None = None
    token_calls: list[tuple[str, str, str]] = field(default_factory=list)  # (call, as, token)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inspect(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport:
        with self._lock:
            self.calls.append((target, credentials))
        if self.before_answer is not None:
            self.before_answer()
        if self.error is not None:
            raise self.error
        if credentials.principal in self.errors_for:
            raise self.errors_for[credentials.principal]
        return self._report_for(target)

    def _report_for(self, target: ConnectionTarget) -> ProxmoxReport:
        """``report``, for the first host asked and for loopback addresses
        (the nodes' own endpoints); for any other host the same report from
        another PVE cluster (its name and certificates its own), so that a
        test may register several clusters through one fake. With
        ``one_cluster``, every host is a node of the same cluster."""
        host = urlsplit(target.api_endpoint).hostname or ""
        with self._lock:
            if self._first_host is None:
                self._first_host = host
        if self.one_cluster or host == self._first_host or _is_loopback(host):
            return self.report
        return _as_another_cluster(self.report, host)

    def check(
        self, target: ConnectionTarget, credentials: Credentials, *, fresh_login: bool = False
    ) -> ProxmoxReport:
        with self._lock:
            self.checks.append((target, credentials))
            self.fresh_logins.append(fresh_login)
        return self.inspect(target, credentials)

    def check_through(
        self,
        targets: Sequence[ConnectionTarget],
        credentials: Credentials,
        *,
        fresh_login: bool = False,
    ) -> CheckAttempts:
        """Each target in turn through ``check``, as the client does: one
        named in ``unreachable`` (by url) fails as a node that is down."""
        failed: list[tuple[ConnectionTarget, ClusterError]] = []
        for target in targets:
            down = self.unreachable.get(target.api_endpoint)
            if down is not None:
                with self._lock:
                    self.checks.append((target, credentials))
                failed.append((target, down))
                continue
            try:
                report = self.check(target, credentials, fresh_login=fresh_login)
            except (ProxmoxUnreachable, ProxmoxTLSError, ProxmoxBadResponse) as error:
                failed.append((target, error))
                continue
            return CheckAttempts(report, target, tuple(failed))
        return CheckAttempts(None, None, tuple(failed))

    def issue_token(
        self, target: ConnectionTarget, credentials: PasswordCredentials, *, name: str, comment: str
    ) -> TokenCredentials:
        token_id = f"{credentials.username}!{name}"
        with self._lock:
            self.token_calls.append(("issue", credentials.principal, token_id))
        if self.error is not None:
            raise self.error
        if self.issue_error is not None:
            raise self.issue_error
        token = TokenCredentials(token_id, Secret(f"secret-of-{name}"), created_by_registry=True)
        self.tokens[token_id] = token
        return token

    def delete_token(
        self, target: ConnectionTarget, credentials: Credentials, token_id: str
    ) -> None:
        with self._lock:
            self.token_calls.append(("delete", credentials.principal, token_id))
        if self.delete_error is not None:
            raise self.delete_error
        self.tokens.pop(token_id, None)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _as_another_cluster(report: ProxmoxReport, host: str) -> ProxmoxReport:
    """``report`` as another PVE cluster would send it: the cluster named
    after ``host``, each node's certificate its own."""
    label = host.split(".")[0]
    digest = hashlib.sha256(host.encode()).hexdigest().upper()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 64, 2))
    status = (
        None
        if report.cluster_status is None
        else [
            replace(entry, name=f"{entry.name}-{label}") if entry.type == "cluster" else entry
            for entry in report.cluster_status
        ]
    )
    nodes = (
        None
        if report.nodes is None
        else [
            replace(node, ssl_fingerprint=fingerprint if node.ssl_fingerprint else None)
            for node in report.nodes
        ]
    )
    return replace(report, cluster_status=status, nodes=nodes)


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RecordingObserver:
    """A check observer that keeps what it is told."""

    finished: list[tuple[CheckOutcome, float]] = field(default_factory=list)

    def check_finished(self, outcome: CheckOutcome, seconds: float) -> None:
        self.finished.append((outcome, seconds))
