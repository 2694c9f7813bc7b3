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

Without ``Sys.Audit`` on ``/`` the cluster status is refused (403); the
nodes are read anyway, and a refused node list counts as empty.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from clusters.domain import (
    ClusterStatusEntry,
    ConnectionTarget,
    Credentials,
    NodeEntry,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxPermissionDenied,
    ProxmoxReport,
)
from clusters.proxmox.api import PveSession, open_early
from clusters.proxmox.tickets import TicketCache
from clusters.proxmox.tls import FingerprintFetcher, fetch_server_fingerprint
from clusters.proxmox.transport import (
    DEFAULT_MAX_RESPONSE_BYTES,
    Connection,
    Deadline,
    Transport,
)

_Read = TypeVar("_Read")


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
        fingerprint_fetcher: FingerprintFetcher = fetch_server_fingerprint,
        parallel: bool = True,
        tickets: TicketCache | None = None,
    ) -> None:
        self._transport = Transport(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            ca_bundle=ca_bundle,
            max_response_bytes=max_response_bytes,
            fingerprint_fetcher=fingerprint_fetcher,
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

    def check(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport:
        """Read version, cluster status and nodes in turn on one connection,
        with the cluster's kept ticket where there is one (renewed when it
        nears its end); a ticket refused on the way means one fresh login
        with the password. API tokens never log in."""
        deadline = Deadline.after(self.check_budget)
        with self._transport.connect(target, credentials, deadline=deadline) as connection:
            if not isinstance(credentials, PasswordCredentials):
                return _read_in_turn(PveSession.login(connection, credentials))
            key = self._tickets.key(target, credentials)
            session = self._kept_session(connection, key)
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
