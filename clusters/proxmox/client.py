"""``ProxmoxClient``: what the registry asks of a cluster, on the PVE API.

``inspect`` logs in with the operator's credentials and reads what the
registry records (version, cluster status, or the visible nodes where the
account may not read the status). The version and status reads go out side
by side, each on a connection of its own: after the login both cost one
round trip instead of two (``benchmarks/bench_registration_latency.py``).
"""

from __future__ import annotations

import functools
from concurrent.futures import Future, ThreadPoolExecutor, wait

from clusters.domain import (
    ClusterStatusEntry,
    ConnectionTarget,
    Credentials,
    NodeEntry,
    PasswordCredentials,
    ProxmoxPermissionDenied,
    ProxmoxReport,
)
from clusters.proxmox.api import PveSession, open_early
from clusters.proxmox.network_policy import NetworkPolicy
from clusters.proxmox.tls import FingerprintFetcher, fetch_server_fingerprint
from clusters.proxmox.transport import DEFAULT_MAX_RESPONSE_BYTES, Connection, Transport


class ProxmoxClient:
    """Proves credentials against one cluster and reads its facts.

    Thread-safe: each ``inspect`` opens its own connections; the executor
    only runs the status read beside the login and version read.
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
        # A status read holds its worker through the login it waits for; the
        # service's own request threads bound how many run at once.
        self._executor = (
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="proxmox") if parallel else None
        )

    def inspect(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport:
        """Log in, then read version and cluster status side by side.

        The status read has a connection of its own, opened while the login
        is under way, so once the ticket is there both reads cost one round
        trip: a fresh connection would first spend round trips on its TCP
        and TLS handshakes. Without a login (API tokens) both reads start at
        once.
        """
        if self._executor is None:
            return self._inspect_sequentially(target, credentials)
        connect = self._transport.connect
        with connect(target, credentials) as main, connect(target, credentials) as beside:
            logged_in: Future[PveSession] = Future()
            status_read = self._executor.submit(
                self._read_cluster_status_after_login, beside, logged_in
            )
            try:
                session = PveSession.login(main, credentials)
                logged_in.set_result(session)
                version = session.version()
            except BaseException as error:
                # The first error wins. The status read is over before this
                # returns (a login error ends it at once), so nothing of this
                # check is still talking to the cluster afterwards.
                if not logged_in.done():
                    logged_in.set_exception(error)
                wait([status_read])
                raise
            cluster_status, nodes = status_read.result()
        return ProxmoxReport(version=version, cluster_status=cluster_status, nodes=nodes)

    def _inspect_sequentially(
        self, target: ConnectionTarget, credentials: Credentials
    ) -> ProxmoxReport:
        """One connection, one call after the other (``parallel=False``, the
        benchmark's baseline)."""
        with self._transport.connect(target, credentials) as connection:
            session = PveSession.login(connection, credentials)
            version = session.version()
            cluster_status, nodes = self._read_cluster_status(session)
        return ProxmoxReport(version=version, cluster_status=cluster_status, nodes=nodes)

    def _read_cluster_status_after_login(
        self, connection: Connection, logged_in: Future[PveSession]
    ) -> tuple[list[ClusterStatusEntry] | None, list[NodeEntry] | None]:
        # Only a password login leaves time to connect: a token's "login" is
        # already done.
        if isinstance(connection.credentials, PasswordCredentials):
            open_early(connection)
        return self._read_cluster_status(logged_in.result().on(connection))

    @staticmethod
    def _read_cluster_status(
        session: PveSession,
    ) -> tuple[list[ClusterStatusEntry] | None, list[NodeEntry] | None]:
        try:
            return session.cluster_status(), None
        except ProxmoxPermissionDenied:
            # No Sys.Audit on "/": count what /nodes lets this account see.
            try:
                return None, session.nodes()
            except ProxmoxPermissionDenied:
                return None, []
