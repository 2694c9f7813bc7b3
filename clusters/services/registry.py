"""The registry's use cases: register, edit, deregister, list (a page, or
everything) and get.

``ClusterService`` receives a unit-of-work factory and a Proxmox gateway;
it never touches requests, the ORM or HTTP objects, so the REST API,
management commands and tests all drive it the same way. Each use case is
told who acts (``Actor``) and keeps its writes in one unit of work, never
held open while Proxmox is being asked.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from clusters.domain import (
    Actor,
    AuditAction,
    AuditEvent,
    CheckSchedule,
    Cluster,
    ClusterAlreadyRegistered,
    ClusterError,
    ClusterNameTaken,
    ClusterNotFound,
    ClusterPage,
    ClusterQuery,
    ConnectionTarget,
    Credentials,
    Edit,
    EditRequest,
    Endpoint,
    EndpointHealth,
    PasswordCredentials,
    Permission,
    PreconditionFailed,
    ProxmoxNoAnswer,
    ProxmoxPermissionDenied,
    ProxmoxReport,
    RegistrationRequest,
    StaleCluster,
    StatusChange,
    TokenCredentials,
    TokenHandOffRefused,
    assess_health,
    authorize,
    configuration_changes,
    discovered_endpoints,
    identity_keys,
    kept_for,
    local_node,
    matched_to_nodes,
    node_states,
    parse_cluster_id,
    parse_endpoint,
)
from clusters.services.checks import DEFAULT_HISTORY_LIMIT, DEFAULT_SCHEDULE, inspect
from clusters.services.ports import Clock, ProxmoxGateway, Random, UnitOfWorkFactory

logger = logging.getLogger("clusters")

# The audit record's key for what became of an API token the registry had
# made on the cluster: [token id, "deleted" | "left on the cluster: …"].
CLUSTER_TOKEN_CHANGE = "cluster_token"
TOKEN_DELETED = "deleted"


@dataclass(frozen=True)
class _Proof:
    """What proving a connection established: the credentials to keep (the
    ones given, or the API token handed off to) and what Proxmox reported."""

    credentials: Credentials
    report: ProxmoxReport
    issued: TokenCredentials | None = None


class ClusterService:
    def __init__(
        self,
        *,
        unit_of_work: UnitOfWorkFactory,
        proxmox: ProxmoxGateway,
        clock: Clock,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        schedule: CheckSchedule = DEFAULT_SCHEDULE,
        random: Random = random.random,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
    ) -> None:
        self._unit_of_work = unit_of_work
        self._proxmox = proxmox
        self._clock = clock
        self._new_id = new_id
        self._schedule = schedule
        self._random = random
        self._history_limit = history_limit

    # -- register ------------------------------------------------------

    def register(self, request: RegistrationRequest, *, actor: Actor) -> Cluster:
        """Prove the credentials against the cluster, record what it reports:
        the cluster, its nodes and its first status (the start of its status
        history), due for its first background check an interval from now.

        With ``create_token``, the password only creates a least-privilege
        API token on the cluster, which is what is kept. A failure at any
        step stores nothing and leaves no token behind.
        """
        authorize(actor, Permission.OPERATE, "register clusters")
        registration = request.validate()
        # Checked first so a taken name costs no login at Proxmox; add()
        # checks again atomically, for registrations racing this one.
        self._refuse_taken_name(registration.name)

        cluster_id = self._new_id()
        proof = self._prove(
            registration.target,
            registration.credentials,
            create_token=registration.create_token,
            endpoint=registration.endpoint,
            cluster_id=cluster_id,
        )
        report = proof.report
        health = assess_health(report)
        now = self._clock()
        cluster = Cluster(
            id=cluster_id,
            name=registration.name,
            api_endpoint=registration.target.api_endpoint,
            credentials=proof.credentials,
            verify_tls=registration.target.verify_tls,
            fingerprint=registration.target.fingerprint,
            status=health.status,
            proxmox_version=report.version,
            node_count=health.node_count,
            created_at=now,
            updated_at=now,
            last_checked_at=now,
            nodes_online=health.nodes_online,
            cluster_name=health.cluster_name,
            next_check_at=self._schedule.next_check(now, self._random()),
            endpoints=(
                discovered_endpoints(report, registration.endpoint)
                if registration.discover_endpoints and registration.endpoint is not None
                else ()
            ),
            discover_endpoints=registration.discover_endpoints,
            registered_node=local_node(report),
            endpoint_health={registration.target.api_endpoint: EndpointHealth(last_ok_at=now)},
        )
        first_status = StatusChange(
            cluster.id, now, None, cluster.status, f"registered: {health.reason}"
        )
        identity = identity_keys(report)
        try:
            with self._unit_of_work() as uow:
                uow.clusters.add(cluster)  # a taken name is said first
                uow.identities.assign(cluster, identity)
                uow.nodes.replace(cluster.id, node_states(report), now)
                uow.history.append(first_status, keep=self._history_limit)
                uow.audit.append(
                    AuditEvent.success(
                        AuditAction.CLUSTER_REGISTER,
                        actor=actor,
                        at=now,
                        cluster=cluster,
                        changes=configuration_changes(None, cluster),
                    )
                )
                uow.commit()
        except BaseException as error:
            self._take_back(proof, registration.target, registration.credentials, cluster_id)
            if isinstance(error, ClusterNameTaken):
                self._log_name_taken(cluster.name)
            if isinstance(error, ClusterAlreadyRegistered):
                _log_registered_twice(error, registration.target)
            raise
        logger.info(
            "Cluster registered successfully, cluster_id=%s, name=%s", cluster.id, cluster.name
        )
        return cluster

    # -- edit ------------------------------------------------------

    def edit(
        self,
        cluster_id: str | uuid.UUID,
        request: EditRequest,
        *,
        actor: Actor,
        expected_version: int | None = None,
    ) -> Cluster:
        """Change what the operator configured (docs/product-contract.md §9).

        ``expected_version`` (the API's ``If-Match``) must be the stored
        version, else PreconditionFailed. A rename alone makes no call to
        Proxmox; a change of anything used to connect is proven against
        Proxmox first, exactly as a registration, and on any failure nothing
        changes. An edit that changes nothing stores nothing (no new version).
        """
        authorize(actor, Permission.OPERATE, "edit clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            cluster = uow.clusters.find_by_id(parsed)
        if expected_version is not None and expected_version != cluster.version:
            raise PreconditionFailed(cluster.id, expected_version, cluster.version)
        edit = request.validate(cluster)
        if edit.is_empty:
            return cluster
        if "name" in edit.changes:
            self._refuse_taken_name(edit.changes["name"], allowed=cluster.id)

        now = self._clock()
        edited = cluster.reconfigured(at=now, **edit.changes)
        proof: _Proof | None = None
        findings: Cluster | None = None
        status_change: StatusChange | None = None
        if edit.changes_connection:
            proof = self._prove(
                edited.target,
                edited.credentials,
                create_token=edit.create_token,
                endpoint=edit.endpoint,
                cluster_id=cluster.id,
            )
            report = proof.report
            learned = _topology_after_edit(edited, edit, report)
            edited = cluster.reconfigured(
                at=now, **{**edit.changes, "credentials": proof.credentials, **learned}
            )
            health = assess_health(report)
            findings = edited.observed(
                at=now,
                status=health.status,
                node_count=health.node_count,
                nodes_online=health.nodes_online,
                cluster_name=health.cluster_name,
                proxmox_version=report.version,
                last_error=None,
                last_error_details=None,
                endpoint_health={
                    **kept_for(cluster.endpoint_health, edited.api_endpoint, edited.endpoints),
                    edited.api_endpoint: EndpointHealth(last_ok_at=now),
                },
            )
            # The proof is a check: its nodes are kept, a change of status too.
            if findings.status != cluster.status:
                status_change = StatusChange(
                    cluster.id, now, cluster.status, findings.status, f"edited: {health.reason}"
                )
        try:
            with self._unit_of_work() as uow:
                uow.clusters.update(edited)
                if findings is not None and proof is not None:
                    uow.clusters.record_check(findings)
                    uow.identities.assign(edited, identity_keys(proof.report))
                    uow.nodes.replace(cluster.id, node_states(proof.report), now)
                if status_change is not None:
                    uow.history.append(status_change, keep=self._history_limit)
                uow.audit.append(
                    AuditEvent.success(
                        AuditAction.CLUSTER_EDIT,
                        actor=actor,
                        at=now,
                        cluster=edited,
                        changes=configuration_changes(cluster, edited),
                    )
                )
                stored = uow.clusters.find_by_id(cluster.id)
                uow.commit()
        except BaseException as error:
            if proof is not None:
                given = edit.changes.get("credentials", edited.credentials)
                self._take_back(proof, edited.target, given, cluster.id)
            if isinstance(error, ClusterNameTaken):
                self._log_name_taken(edited.name)
            if isinstance(error, ClusterAlreadyRegistered):
                _log_registered_twice(error, edited.target)
            if isinstance(error, StaleCluster) and expected_version is not None:
                raise PreconditionFailed(
                    cluster.id, expected_version, self._current_version(cluster.id)
                ) from None
            raise
        logger.info(
            "Cluster edited, cluster_id=%s, name=%s, version=%s, changed=%s",
            stored.id,
            stored.name,
            stored.version,
            ",".join(sorted(edit.changes)),
        )
        if status_change is not None:
            logger.info(
                "Cluster status changed, cluster_id=%s, name=%s, from=%s, to=%s",
                stored.id,
                stored.name,
                status_change.from_status,
                status_change.to_status,
            )
        self._retire_replaced_token(cluster, stored, given=edit.changes.get("credentials"))
        return stored

    # -- deregister ------------------------------------------------------

    def deregister(
        self,
        cluster_id: str | uuid.UUID,
        *,
        actor: Actor,
        token_owner: PasswordCredentials | None = None,
    ) -> None:
        """Forget a cluster. An API token the registry made on it is deleted
        there first, as a best effort: logged in as ``token_owner`` when
        given (PVE lets only the token's user, or an account with
        ``User.Modify``, delete it), else with the token itself. Whatever
        becomes of the token, the cluster is deregistered and the audit event
        says what happened to it."""
        authorize(actor, Permission.OPERATE, "deregister clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            cluster = uow.clusters.find_by_id(parsed)
        changes = configuration_changes(cluster, None)
        token = _registry_token(cluster.credentials)
        if token is not None:
            outcome = self._delete_token_quietly(
                cluster.target, token_owner or token, token, cluster.id
            )
            changes[CLUSTER_TOKEN_CHANGE] = [token.token_id, outcome]
        with self._unit_of_work() as uow:
            uow.clusters.delete(parsed)
            uow.audit.append(
                AuditEvent.success(
                    AuditAction.CLUSTER_DEREGISTER,
                    actor=actor,
                    at=self._clock(),
                    cluster=cluster,
                    changes=changes,
                )
            )
            uow.commit()
        logger.info("Cluster deregistered successfully, cluster_id=%s", parsed)

    # -- read ------------------------------------------------------

    def list_clusters(self, query: ClusterQuery, *, actor: Actor) -> ClusterPage:
        """The page of clusters ``query`` asks for, as the API shows them."""
        authorize(actor, Permission.VIEW, "list clusters")
        # A read needs no batch: no transaction to open and commit around
        # it on a database, no lock to wait for in memory.
        return self._unit_of_work().clusters.page(query)

    def all_clusters(self, *, actor: Actor) -> Sequence[Cluster]:
        """Every registered cluster, by name (the command line's list)."""
        authorize(actor, Permission.VIEW, "list clusters")
        with self._unit_of_work() as uow:
            return uow.clusters.list()

    def get_cluster(self, cluster_id: str | uuid.UUID, *, actor: Actor) -> Cluster:
        authorize(actor, Permission.VIEW, "see clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            return uow.clusters.find_by_id(parsed)

    def get_cluster_by_name(self, name: str, *, actor: Actor) -> Cluster:
        authorize(actor, Permission.VIEW, "see clusters")
        with self._unit_of_work() as uow:
            cluster = uow.clusters.find_by_name(name.strip())
        if cluster is None:
            raise ClusterNotFound(name.strip())
        return cluster

    # -- proving a connection, and the token hand-off ----------------

    def _prove(
        self,
        target: ConnectionTarget,
        credentials: Credentials,
        *,
        create_token: bool,
        endpoint: Endpoint | None,
        cluster_id: uuid.UUID,
    ) -> _Proof:
        """Prove ``credentials`` against ``target`` and read its health, as a
        registration does; with ``create_token``, hand off to an API token
        made with them and prove that instead. Nothing is left on the cluster
        when this raises."""
        try:
            if not create_token:
                return _Proof(credentials, inspect(self._proxmox, target, credentials))
            assert isinstance(credentials, PasswordCredentials)  # the request's rules
            token = self._issue_token(target, credentials, cluster_id)
            try:
                report = inspect(self._proxmox, target, token)
            except BaseException:
                self._delete_token_quietly(target, credentials, token, cluster_id)
                raise
            return _Proof(token, report, issued=token)
        except ProxmoxNoAnswer as error:
            hint = endpoint.no_answer_hint() if endpoint is not None else None
            if hint is None or endpoint is None:
                raise
            raise ProxmoxNoAnswer(
                f"{error.message}. {hint}", details={"suggested_endpoint": endpoint.suggested}
            ) from None

    def _issue_token(
        self, target: ConnectionTarget, credentials: PasswordCredentials, cluster_id: uuid.UUID
    ) -> TokenCredentials:
        name = f"proxmoxer-{self._new_id().hex[:8]}"
        try:
            token = self._proxmox.issue_token(
                target, credentials, name=name, comment=f"proxmoxer registry, cluster {cluster_id}"
            )
        except TokenHandOffRefused as error:
            logger.warning(
                "Proxmox API token not created, endpoint=%s, error=%s",
                target.api_endpoint,
                error.message,
            )
            raise
        logger.info(
            "Proxmox API token created, cluster_id=%s, token_id=%s", cluster_id, token.token_id
        )
        return token

    def _take_back(
        self,
        proof: _Proof,
        target: ConnectionTarget,
        given: Credentials,
        cluster_id: uuid.UUID,
    ) -> None:
        """Storing failed after a token was handed off to: delete it again."""
        if proof.issued is not None and isinstance(given, PasswordCredentials):
            self._delete_token_quietly(target, given, proof.issued, cluster_id)

    def _delete_token_quietly(
        self,
        target: ConnectionTarget,
        using: Credentials,
        token: TokenCredentials,
        cluster_id: uuid.UUID,
    ) -> str:
        """Delete ``token`` on the cluster, best effort: ``"deleted"``, or what
        stood in the way (logged)."""
        try:
            self._proxmox.delete_token(target, using, token.token_id)
        except ClusterError as error:
            reason = error.message
            if isinstance(error, ProxmoxPermissionDenied) and using == token:
                reason = (
                    f"PVE does not let an API token delete itself ({error.reason or 'refused'}); "
                    f"deregister with the password of {token.user}, or run "
                    f"'pveum user token remove {token.user} {token.name}' on a node"
                )
            logger.warning(
                "Proxmox API token not deleted, cluster_id=%s, token_id=%s, error=%s",
                cluster_id,
                token.token_id,
                reason,
            )
            return f"left on the cluster: {reason}"
        logger.info(
            "Proxmox API token deleted, cluster_id=%s, token_id=%s", cluster_id, token.token_id
        )
        return TOKEN_DELETED

    def _retire_replaced_token(
        self, before: Cluster, after: Cluster, *, given: Credentials | None
    ) -> None:
        """An edit replaced a token the registry had made: nobody else knows
        its secret, so it is deleted on the cluster (best effort, logged) —
        with the password the edit gave, if it gave one."""
        old = _registry_token(before.credentials)
        if old is None or after.credentials == before.credentials:
            return
        using = given if isinstance(given, PasswordCredentials) else old
        self._delete_token_quietly(after.target, using, old, after.id)

    # -- helpers ------------------------------------------------------

    def _refuse_taken_name(self, name: str, *, allowed: uuid.UUID | None = None) -> None:
        with self._unit_of_work() as uow:
            holder = uow.clusters.find_by_name(name)
        if holder is not None and holder.id != allowed:
            self._log_name_taken(name)
            raise ClusterNameTaken(name)

    def _current_version(self, cluster_id: uuid.UUID) -> int:
        with self._unit_of_work() as uow:
            return uow.clusters.find_by_id(cluster_id).version

    @staticmethod
    def _log_name_taken(name: str) -> None:
        logger.warning("Cluster name already exists, name=%s", name)


def _log_registered_twice(error: ClusterAlreadyRegistered, target: ConnectionTarget) -> None:
    logger.warning(
        "Cluster already registered, endpoint=%s, existing_id=%s, existing_name=%s",
        target.api_endpoint,
        error.existing_id,
        error.existing_name,
    )


def _topology_after_edit(edited: Cluster, edit: Edit, report: ProxmoxReport) -> dict[str, Any]:
    """What an edit proven against the cluster learns of its topology: the
    node behind the endpoint, the further endpoints as set (named after
    their nodes) or, where they are learned, as the cluster reports them."""
    learned: dict[str, Any] = {"registered_node": local_node(report)}
    if "endpoints" in edit.changes:
        learned["endpoints"] = matched_to_nodes(edit.changes["endpoints"], report)
    elif edited.discover_endpoints:
        learned["endpoints"] = discovered_endpoints(report, parse_endpoint(edited.api_endpoint))
    return learned


def _registry_token(credentials: Credentials) -> TokenCredentials | None:
    if isinstance(credentials, TokenCredentials) and credentials.created_by_registry:
        return credentials
    return None
