"""``ProxmoxClient``: what the registry asks of a cluster, on the PVE API.

Two calls, one per purpose:

- ``inspect`` proves credentials (a registration, an edit): it logs in with
  them and reads the version, the cluster status and the nodes side by
  side, each read on a connection of its own, so that after the login the
  three cost one round trip instead of three
  (``benchmarks/bench_registration_latency.py``). Latency is what a person
  waiting for an answer notices.
- ``check`` looks again (background checks, refresh): it reuses the
  cluster's kept PVE ticket (``tickets.py``) instead of logging in, and reads
  the same three in turn on one connection. A thousand clusters a minute
  make CPU, not latency, what counts: one TLS handshake per check instead of
  three (``benchmarks/bench_checks.py``). A check never takes longer than
  ``check_budget`` seconds in all, so a claim on the cluster that outlasts
  that budget is never overtaken by a check still running.

``check_through`` is ``check`` with failover: the endpoints of a cluster
(its nodes' own addresses, docs/operations.md "Endpoints and failover")
in turn until one answers, all within one check budget.

Without ``Sys.Audit`` on ``/`` the cluster status is refused (403); the
nodes are read anyway, and a refused node list counts as empty.

``issue_token`` and ``delete_token`` are the token hand-off
(docs/api.md, "Token hand-off"): a least-privilege API token made with the
operator's password, so that the password need not be kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from clusters.domain import (
    CheckAttempts,
    ClusterError,
    ClusterStatusEntry,
    ConnectionTarget,
    Credentials,
    NetworkPolicyRefused,
    NodeEntry,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxPermissionDenied,
    ProxmoxReport,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    TokenCredentials,
    TokenHandOffRefused,
)
from clusters.proxmox.api import PveSession, open_early
from clusters.proxmox.network_policy import NetworkPolicy
from clusters.proxmox.tickets import TicketCache
from clusters.proxmox.tls import FingerprintFetcher, fetch_server_fingerprint
from clusters.proxmox.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Connection,
    Deadline,
    Transport,
)

_Read = TypeVar("_Read")

# PVE's built-in read-only role: Sys.Audit, VM.Audit, Datastore.Audit, … —
# everything a check reads, nothing it could change.
TOKEN_ROLE = "PVEAuditor"
# What makes a check pass one endpoint over for the next (``check_through``):
# trouble with that node's API, not with the credentials or the account.
_PASSED_OVER = (ProxmoxUnreachable, ProxmoxTLSError, ProxmoxBadResponse, NetworkPolicyRefused)


class ProxmoxClient:
    """Proves credentials against clusters and reads their facts.

    Thread-safe: each call opens its own connections; the executor only runs
    the reads beside the login of ``inspect``, and the ticket cache has its
    own lock.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        ca_bundle: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        network_policy: NetworkPolicy | None = None,
        fingerprint_fetcher: FingerprintFetcher | None = None,
        parallel: bool = True,
        tickets: TicketCache | None = None,
    ) -> None:
        """``network_policy`` decides where connections may go (default:
        the product's default denied networks, everything else allowed);
        ``fingerprint_fetcher`` reads the certificate of a server whose
        handshake failed (default: over a connection under that policy)."""
        policy = network_policy or NetworkPolicy()
        self._transport = Transport(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            ca_bundle=ca_bundle,
            max_response_bytes=max_response_bytes,
            fingerprint_fetcher=fingerprint_fetcher
            or functools.partial(fetch_server_fingerprint, network_policy=policy),
            network_policy=policy,
        )
        self._tickets = tickets if tickets is not None else TicketCache()
        # A read beside the login holds its worker through the login it waits
        # for; the service's own request threads bound how many run at once.
        self._executor = (
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="proxmox") if parallel else None
        )

    @property
    def check_budget(self) -> float:
        """The most seconds one ``check`` takes, however the cluster
        answers: the time to connect and to read one slow answer to its end
        (the read timeout for its headers, again for its body). A failing
        cluster fails the check at its first slow answer; one that answers
        every call just in time is cut off here."""
        transport = self._transport
        return transport.connect_timeout + 2 * transport.read_timeout

    @property
    def tickets(self) -> TicketCache:
        return self._tickets

    # -- proving credentials ---------------------------------------------------------

    def inspect(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport:
        """Log in, then read version, cluster status and nodes side by side.

        Each read beside the login has a connection of its own, opened while
        the login is under way, so once the ticket is there all three cost
        one round trip: a fresh connection would first spend round trips on
        its TCP and TLS handshakes. Without a login (API tokens) the reads
        start at once. A password login's ticket is kept for later checks.
        """
        if self._executor is None:
            return self._inspect_sequentially(target, credentials)
        connect = self._transport.connect
        with (
            connect(target, credentials) as main,
            connect(target, credentials) as for_status,
            connect(target, credentials) as for_nodes,
        ):
            logged_in: Future[PveSession] = Future()
            status_read: Future[Any] = self._executor.submit(
                self._after_login, for_status, logged_in, _cluster_status
            )
            nodes_read: Future[Any] = self._executor.submit(
                self._after_login, for_nodes, logged_in, _nodes
            )
            try:
                session = PveSession.login(main, credentials)
                logged_in.set_result(session)
                version = session.version()
            except BaseException as error:
                # The first error wins. The reads are over before this
                # returns (a login error ends them at once), so nothing of
                # this inspection is still talking to the cluster afterwards.
                if not logged_in.done():
                    logged_in.set_exception(error)
                wait([status_read, nodes_read])
                raise
            cluster_status, nodes = status_read.result(), nodes_read.result()
        self._keep_ticket(target, credentials, session)
        return ProxmoxReport(version=version, cluster_status=cluster_status, nodes=nodes)

    def issue_token(
        self, target: ConnectionTarget, credentials: PasswordCredentials, *, name: str, comment: str
    ) -> TokenCredentials:
        """Log in with the password, create the privilege-separated token
        ``<user>!<name>`` and grant it ``PVEAuditor`` on ``/``.

        Raises TokenHandOffRefused with Proxmox's reason when the account may
        not do either. A token created before a later step failed is deleted
        again before the error is raised, so nothing is left on the cluster
        (the message says so when even that fails).
        """
        with self._transport.connect(target, credentials) as connection:
            session = PveSession.login(connection, credentials)
            try:
                token = session.create_token(credentials.username, name, comment=comment)
            except ProxmoxPermissionDenied as error:
                raise _refused(f"create an API token for {credentials.username}", error) from None
            try:
                session.grant_token_role(token.token_id, TOKEN_ROLE)
            except ClusterError as error:
                failure: ClusterError = (
                    _refused(f"grant {TOKEN_ROLE} on / to {token.token_id}", error)
                    if isinstance(error, ProxmoxPermissionDenied)
                    else error
                )
                try:
                    session.delete_token(token.token_id)
                except ClusterError:
                    failure.message += (
                        f"; the token {token.token_id} it had created could not be deleted "
                        "again: delete it on the cluster"
                    )
                    failure.args = (failure.message,)
                raise failure from None
        return token

    def delete_token(
        self, target: ConnectionTarget, credentials: Credentials, token_id: str
    ) -> None:
        """Delete the API token ``token_id``, logged in with ``credentials``
        (its user's password; a privilege-separated token may not delete
        itself, PVE refuses that with 403)."""
        with self._transport.connect(target, credentials) as connection:
            PveSession.login(connection, credentials).delete_token(token_id)

    def _inspect_sequentially(
        self, target: ConnectionTarget, credentials: Credentials
    ) -> ProxmoxReport:
        """One connection, one call after the other (``parallel=False``, the
        benchmark's baseline)."""
        with self._transport.connect(target, credentials) as connection:
            session = PveSession.login(connection, credentials)
            report = _read_in_turn(session)
        self._keep_ticket(target, credentials, session)
        return report

    def _after_login(
        self,
        connection: Connection,
        logged_in: Future[PveSession],
        read: Callable[[PveSession], _Read],
    ) -> _Read:
        # Only a password login leaves time to connect: a token's "login" is
        # already done.
        if isinstance(connection.credentials, PasswordCredentials):
            open_early(connection)
        return read(logged_in.result().on(connection))

    # -- looking again --------------------------------------------------------------------

    def check(
        self, target: ConnectionTarget, credentials: Credentials, *, fresh_login: bool = False
    ) -> ProxmoxReport:
        """Read version, cluster status and nodes in turn on one connection,
        with the cluster's kept ticket where there is one (renewed when it
        nears its end); a ticket refused on the way means one fresh login
        with the password. ``fresh_login`` logs in with the password whatever
        is kept (a person's refresh: it proves the stored password, which a
        ticket renewal does not). API tokens never log in."""
        deadline = Deadline.after(self.check_budget)
        return self._check_on(target, credentials, fresh_login, deadline)

    def check_through(
        self,
        targets: Sequence[ConnectionTarget],
        credentials: Credentials,
        *,
        fresh_login: bool = False,
    ) -> CheckAttempts:
        """``check`` through the first of ``targets`` that answers, in their
        order: one that cannot be reached, whose certificate does not match
        its pin, that answers like no PVE node, or that the network policy
        refuses, is passed over for the next. Credentials refused or a
        permission denied end it at once (they are the same on every node).

        All of it within one check budget, and no endpoint is started after
        the budget is spent: an endpoint that refuses costs nothing, one
        that never accepts the connection a connect timeout, one that
        accepts it and never answers a read timeout. Tickets are kept per
        endpoint."""
        deadline = Deadline.after(self.check_budget)
        failed: list[tuple[ConnectionTarget, ClusterError]] = []
        for target in targets:
            if failed and deadline.left() <= 0:
                break
            try:
                report = self._check_on(target, credentials, fresh_login, deadline)
            except _PASSED_OVER as error:
                failed.append((target, error))
                continue
            return CheckAttempts(report, target, tuple(failed))
        return CheckAttempts(None, None, tuple(failed))

    def _check_on(
        self,
        target: ConnectionTarget,
        credentials: Credentials,
        fresh_login: bool,
        deadline: Deadline,
    ) -> ProxmoxReport:
        with self._transport.connect(target, credentials, deadline=deadline) as connection:
            if not isinstance(credentials, PasswordCredentials):
                return _read_in_turn(PveSession.login(connection, credentials))
            key = self._tickets.key(target, credentials)
            session = None if fresh_login else self._kept_session(connection, key)
            if session is not None:
                try:
                    return _read_in_turn(session)
                except ProxmoxAuthenticationFailed:
                    # Refused before its time (PVE's key rotated, a clock
                    # jumped): once more with the password.
                    self._tickets.discard(key)
            session = PveSession.login(connection, credentials)
            if session.ticket is not None:
                self._tickets.keep(key, session.ticket)
            return _read_in_turn(session)

    def _kept_session(self, connection: Connection, key: bytes) -> PveSession | None:
        """A session on the kept ticket, renewed first when due; None when
        there is none, or the renewal was refused."""
        kept = self._tickets.get(key)
        if kept is None:
            return None
        session = PveSession.with_ticket(connection, kept.ticket)
        if not kept.renew:
            return session
        try:
            renewed = session.renew()
        except ProxmoxAuthenticationFailed:
            self._tickets.discard(key)
            return None
        if renewed.ticket is not None:
            self._tickets.keep(key, renewed.ticket)
        return renewed

    def _keep_ticket(
        self, target: ConnectionTarget, credentials: Credentials, session: PveSession
    ) -> None:
        if isinstance(credentials, PasswordCredentials) and session.ticket is not None:
            self._tickets.keep(self._tickets.key(target, credentials), session.ticket)


def _read_in_turn(session: PveSession) -> ProxmoxReport:
    return ProxmoxReport(
        version=session.version(),
        cluster_status=_cluster_status(session),
        nodes=_nodes(session),
    )


def _cluster_status(session: PveSession) -> list[ClusterStatusEntry] | None:
    try:
        return session.cluster_status()
    except ProxmoxPermissionDenied:  # no Sys.Audit on "/": the health is unknown
        return None


def _nodes(session: PveSession) -> list[NodeEntry]:
    try:
        return session.nodes()
    except ProxmoxPermissionDenied:
        return []


def _refused(doing: str, error: ProxmoxPermissionDenied) -> TokenHandOffRefused:
    reason = error.reason or "permission check failed"
    return TokenHandOffRefused(
        f"Proxmox refused to {doing}: {reason}. The token hand-off needs an account that may "
        "create API tokens (its own, or others' with User.Modify) and holds "
        "Permissions.Modify on /; register without create_token, or with such an account",
        details={"proxmox_reason": reason} if error.reason else None,
    )
