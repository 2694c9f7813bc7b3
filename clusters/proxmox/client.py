"""``ProxmoxClient``: what the registry asks of a cluster, on the PVE API.

``inspect`` logs in with the operator's credentials and reads what the
registry records (version, cluster status, or the visible nodes where the
account may not read the status). The version and status reads go out side
by side, each on a connection of its own: after the login both cost one
round trip instead of two (``benchmarks/bench_registration_latency.py``).

``issue_token`` and ``delete_token`` are the token hand-off
(docs/api.md, "Token hand-off"): a least-privilege API token made with the
operator's password, so that the password need not be kept.
"""

from __future__ import annotations

import functools
from concurrent.futures import Future, ThreadPoolExecutor, wait

from clusters.domain import (
    ClusterError,
    ClusterStatusEntry,
    ConnectionTarget,
    Credentials,
    NodeEntry,
    PasswordCredentials,
    ProxmoxPermissionDenied,
    ProxmoxReport,
    TokenCredentials,
    TokenHandOffRefused,
)
from clusters.proxmox.api import PveSession, open_early
from clusters.proxmox.network_policy import NetworkPolicy
from clusters.proxmox.tls import FingerprintFetcher, fetch_server_fingerprint
from clusters.proxmox.transport import DEFAULT_MAX_RESPONSE_BYTES, Connection, Transport

# PVE's built-in read-only role: Sys.Audit, VM.Audit, Datastore.Audit, … —
# everything a check reads, nothing it could change.
TOKEN_ROLE = "PVEAuditor"


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


def _refused(doing: str, error: ProxmoxPermissionDenied) -> TokenHandOffRefused:
    reason = error.reason or "permission check failed"
    return TokenHandOffRefused(
        f"Proxmox refused to {doing}: {reason}. The token hand-off needs an account that may "
        "create API tokens (its own, or others' with User.Modify) and holds "
        "Permissions.Modify on /; register without create_token, or with such an account",
        details={"proxmox_reason": reason} if error.reason else None,
    )
