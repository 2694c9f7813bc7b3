"""Checking registered clusters: ask their API, judge their health, and
record what was found without ever overwriting an edit made meanwhile
(docs/product-contract.md §11; docs/architecture.md, "Background checks").

Every check, manual or in the background, goes the same way: claim the
cluster (a lease in storage that keeps other checkers off it), talk to
Proxmox for up to seconds outside any unit of work, then record the findings
in one unit of work with the node list and, when the status changed, a
status-history entry. The record is conditional on the configuration
version that was checked and on the claim still being the cluster's: if an
operator changed the configuration, the cluster was deregistered, or
another check took over, the findings are dropped.

``check_due`` is the one engine: the embedded scheduler, the Celery tasks
and ``manage.py clusters refresh --all`` only call it.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from clusters.domain import (
    Actor,
    AuditAction,
    AuditEvent,
    CheckAttempts,
    CheckOvertaken,
    CheckSchedule,
    Claim,
    Cluster,
    ClusterError,
    ClusterNotFound,
    ClusterStatus,
    ConnectionTarget,
    Credentials,
    EndpointHealth,
    HistoryPage,
    NetworkPolicyRefused,
    NodeList,
    NodeState,
    Permission,
    ProxmoxAuthenticationFailed,
    ProxmoxError,
    ProxmoxReport,
    ProxmoxTLSError,
    StaleCluster,
    StatusChange,
    after_check,
    assess_health,
    attempt_order,
    authorize,
    kept_for,
    node_states,
    parse_cluster_id,
)
from clusters.services.ports import (
    CheckObserver,
    CheckOutcome,
    Clock,
    IgnoreChecks,
    ProxmoxGateway,
    Random,
    UnitOfWorkFactory,
)

logger = logging.getLogger("clusters")

DEFAULT_SCHEDULE = CheckSchedule(interval=timedelta(seconds=60), lease=timedelta(seconds=45))
DEFAULT_CONCURRENCY = 16
DEFAULT_HISTORY_LIMIT = 1000
# Checks that ended together are recorded in one unit of work, this many at most.
RECORDS_PER_UNIT_OF_WORK = 50
FAILED_LINE = "Cluster check failed, cluster_id=%s, name=%s"


def inspect(
    proxmox: ProxmoxGateway, target: ConnectionTarget, credentials: Credentials
) -> ProxmoxReport:
    """Prove credentials against the cluster's API (a registration, an
    edit), logging a failure with the lines of docs/product-contract.md §16."""
    with _failures_logged(target):
        return proxmox.inspect(target, credentials)


@contextmanager
def _failures_logged(target: ConnectionTarget, *, unless: str | None = None) -> Iterator[None]:
    """Log a failure to talk to Proxmox, unless its message is ``unless``
    (a background check that finds the same failure as last time)."""
    try:
        yield
    except NetworkPolicyRefused as error:
        logger.warning(
            "Connection refused by the network policy, endpoint=%s, error=%s",
            target.api_endpoint,
            error.message,
        )
        raise
    except ProxmoxAuthenticationFailed as error:
        if error.message != unless:
            logger.error("Proxmox authentication failed, error=%s", error.message)
        raise
    except ProxmoxError as error:
        if error.message != unless:
            logger.error(
                "Proxmox API request failed, endpoint=%s, error=%s",
                target.api_endpoint,
                error.message,
            )
        raise


class CheckResult(StrEnum):
    RECORDED = "recorded"  # the findings are stored
    DROPPED = "dropped"  # edited, deregistered or taken over meanwhile: nothing stored
    FAILED = "failed"  # the checker itself failed (logged); the claim runs out, a check follows


@dataclass(frozen=True, slots=True)
class FinishedCheck:
    """What became of one check: the cluster with what the check found (as
    claimed, when the checker failed), and whether it was stored."""

    cluster: Cluster
    result: CheckResult
    error: str | None = None  # why it failed, when the checker says

    @property
    def problem(self) -> str | None:
        """Why the check did not succeed, None when it did: the checker's own
        failure, or what the cluster's API did (unreachable, refused)."""
        if self.result is CheckResult.FAILED:
            return self.error or "the check itself failed; see the log"
        return self.cluster.last_error


CheckListener = Callable[[FinishedCheck], None]


@dataclass(frozen=True, slots=True)
class _Findings:
    """One check's result, before it is stored: the cluster with its new
    observations, the nodes (None when the check could not read them: the
    last list stays) and why the status is what it is."""

    cluster: Cluster
    at: datetime
    nodes: tuple[NodeState, ...] | None
    reason: str


class _Slots:
    """How many more checks this process may start: at most ``concurrency``
    in flight, however many callers ``check_due`` has at once."""

    def __init__(self, concurrency: int) -> None:
        self._free = concurrency
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        with self._lock:
            granted = max(0, min(wanted, self._free))
            self._free -= granted
            return granted

    def give(self, count: int) -> None:
        with self._lock:
            self._free += count


class _CheckPool:
    """The threads that talk to Proxmox, and the slots that bound them. Made
    on first use in each process: threads do not survive a fork (a Celery or
    gunicorn worker), so a forked process makes its own."""

    def __init__(self, concurrency: int) -> None:
        self.pid = os.getpid()
        self.slots = _Slots(concurrency)
        self.executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="check")


class CheckService:
    """Use cases that check clusters: ``check_due`` (the background engine),
    ``check_all`` (a bulk refresh), ``refresh`` (one, on request), and what
    checks leave behind: ``nodes`` and ``history``."""

    def __init__(
        self,
        *,
        unit_of_work: UnitOfWorkFactory,
        proxmox: ProxmoxGateway,
        clock: Clock,
        schedule: CheckSchedule = DEFAULT_SCHEDULE,
        concurrency: int = DEFAULT_CONCURRENCY,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        random: Random = random.random,
        observer: CheckObserver | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("at least one check must be allowed in flight")
        self._unit_of_work = unit_of_work
        self._proxmox = proxmox
        self._clock = clock
        self._schedule = schedule
        self._concurrency = concurrency
        self._history_limit = history_limit
        self._random = random
        self._observer = observer if observer is not None else IgnoreChecks()
        self._pool: _CheckPool | None = None
        self._pool_lock = threading.Lock()

    @property
    def schedule(self) -> CheckSchedule:
        return self._schedule

    @property
    def concurrency(self) -> int:
        return self._concurrency

    def with_concurrency(self, concurrency: int) -> CheckService:
        """The same use cases with ``concurrency`` checks in flight, in a
        pool of their own (a bulk refresh at a terminal may want more than
        the background checks use)."""
        return CheckService(
            unit_of_work=self._unit_of_work,
            proxmox=self._proxmox,
            clock=self._clock,
            schedule=self._schedule,
            concurrency=concurrency,
            history_limit=self._history_limit,
            random=self._random,
            observer=self._observer,
        )

    # -- the engine ------------------------------------------------------------------

    def check_due(
        self,
        now: datetime | None = None,
        limit: int | None = None,
        *,
        on_checked: CheckListener | None = None,
        stop: threading.Event | None = None,
    ) -> list[FinishedCheck]:
        """Claim the clusters due by ``now`` and check them, with at most
        ``concurrency`` checks in flight in this process, recording each as
        the registry itself (``Actor.system()``); return what became of them.

        Clusters are claimed as slots come free, so a claimed cluster is
        checked at once and a slow one holds up only its own slot. Ends when
        ``limit`` clusters were claimed or none is left due, and every check
        it started has ended. With ``now`` None, due means due by the clock's
        time, looked at again every tick while checks are still running;
        ``stop`` set, it claims no more and ends once its checks have.
        ``on_checked`` hears of each check as it ends.
        """
        return self._check_claimed(now, limit, on_checked, stop, Actor.system())

    def check_all(
        self, *, actor: Actor, on_checked: CheckListener | None = None
    ) -> list[FinishedCheck]:
        """Check every registered cluster now, through the same engine: all
        are made due, then checked as ``check_due`` checks them (a cluster
        another checker is checking at this moment is left to it)."""
        authorize(actor, Permission.OPERATE, "refresh clusters")
        now = self._clock()
        with self._unit_of_work() as uow:
            uow.clusters.schedule_all(now)
            uow.commit()
        return self._check_claimed(now, None, on_checked, None, actor)

    def _check_claimed(
        self,
        now: datetime | None,
        limit: int | None,
        on_checked: CheckListener | None,
        stop: threading.Event | None,
        actor: Actor,
    ) -> list[FinishedCheck]:
        pool = self._checking_pool()
        tick = self._schedule.tick.total_seconds()
        outcomes: list[FinishedCheck] = []
        in_flight: dict[Future[_Findings], Claim] = {}
        remaining = limit if limit is not None else sys.maxsize
        may_be_due, look_again_at = True, 0.0
        while True:
            stopping = stop is not None and stop.is_set()
            if not may_be_due and now is None and time.monotonic() >= look_again_at:
                may_be_due = True
            if may_be_due and remaining > 0 and not stopping:
                granted = pool.slots.take(min(remaining, self._concurrency))
                claims = self._claim_due(now, granted) if granted else []
                pool.slots.give(granted - len(claims))
                remaining -= len(claims)
                for claim in claims:
                    checking = pool.executor.submit(self._check, claim.cluster, actor=actor)
                    in_flight[checking] = claim
                if len(claims) < granted:  # nothing more is due right now
                    may_be_due, look_again_at = False, time.monotonic() + tick
            if not in_flight:
                break
            waiting = not may_be_due and now is None and not stopping
            timeout = max(0.0, look_again_at - time.monotonic()) if waiting else None
            done, _ = wait(in_flight, timeout=timeout, return_when=FIRST_COMPLETED)
            ended = [(in_flight.pop(future), future) for future in done]
            pool.slots.give(len(ended))
            for outcome in self._finish(ended, actor):
                outcomes.append(outcome)
                if on_checked is not None:
                    on_checked(outcome)
        return outcomes

    def _claim_due(self, now: datetime | None, limit: int) -> Sequence[Claim]:
        """Up to ``limit`` claims; none when storage fails (logged: the next
        tick tries again)."""
        try:
            with self._unit_of_work() as uow:
                claims = uow.clusters.claim_due(
                    now or self._clock(), limit=limit, lease=self._schedule.lease
                )
                uow.commit()
        except Exception:
            logger.exception("Claiming due clusters failed")
            return []
        return claims

    def _finish(
        self, ended: list[tuple[Claim, Future[_Findings]]], actor: Actor
    ) -> list[FinishedCheck]:
        """What became of checks that ended together. Their findings are
        recorded a batch to a unit of work: one transaction for many checks,
        where one each would make a thousand checks a thousand commits, all
        from the one thread that claims and records."""
        outcomes: list[FinishedCheck] = []
        ready: list[tuple[Claim, _Findings]] = []
        for claim, future in ended:
            try:
                ready.append((claim, future.result()))
            except NetworkPolicyRefused as error:
                # Logged as it happened; nothing is stored, and the claim runs
                # out before the cluster is tried again (the policy may change).
                outcomes.append(FinishedCheck(claim.cluster, CheckResult.FAILED, error.message))
            except Exception:
                # A bug in a checker: one cluster's trouble must not stop the others.
                logger.exception(FAILED_LINE, claim.cluster.id, claim.cluster.name)
                outcomes.append(FinishedCheck(claim.cluster, CheckResult.FAILED))
        for start in range(0, len(ready), RECORDS_PER_UNIT_OF_WORK):
            outcomes += self._record_batch(ready[start : start + RECORDS_PER_UNIT_OF_WORK], actor)
        return outcomes

    def _record_batch(
        self, batch: list[tuple[Claim, _Findings]], actor: Actor
    ) -> list[FinishedCheck]:
        """Record ``batch`` in one unit of work; should any of it not be
        recordable (dropped, or failing), each on its own, so that one
        cluster's lost race or trouble costs the others nothing."""
        if len(batch) > 1:
            try:
                recorded = self._record(batch, actor)
            except Exception:  # noqa: BLE001, S110 - sorted out one by one just below
                pass
            else:
                return [FinishedCheck(checked, CheckResult.RECORDED) for checked in recorded]
        outcomes = []
        for claim, findings in batch:
            try:
                [checked] = self._record([(claim, findings)], actor)
            except (StaleCluster, ClusterNotFound, CheckOvertaken) as error:
                _log_dropped(claim.cluster, error)
                outcomes.append(FinishedCheck(claim.cluster, CheckResult.DROPPED))
            except Exception:
                # The database, say: the claim runs out and a later check tries again.
                logger.exception(FAILED_LINE, claim.cluster.id, claim.cluster.name)
                outcomes.append(FinishedCheck(claim.cluster, CheckResult.FAILED))
            else:
                outcomes.append(FinishedCheck(checked, CheckResult.RECORDED))
        return outcomes

    def _checking_pool(self) -> _CheckPool:
        pool = self._pool
        if pool is None or pool.pid != os.getpid():
            with self._pool_lock:
                if self._pool is None or self._pool.pid != os.getpid():
                    self._pool = _CheckPool(self._concurrency)
                pool = self._pool
        return pool

    # -- one cluster, on request -------------------------------------------------------

    def refresh(self, cluster_id: str | uuid.UUID, *, actor: Actor) -> Cluster:
        """Check a registered cluster again with its stored credentials.

        An unreachable cluster becomes ``unhealthy``; one that now refuses
        the stored credentials becomes ``unknown``. Either way the error is
        kept in ``last_error`` and the last known version, nodes and node
        count stay as they were. The next background check is scheduled an
        interval from now. Raises StaleCluster when the configuration was
        edited while the check ran (the findings are dropped), and
        ClusterNotFound when the cluster was deregistered meanwhile. When
        another refresh of the same cluster recorded first, that one's
        findings stand and are returned.
        """
        authorize(actor, Permission.OPERATE, "refresh clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            claim = uow.clusters.claim(parsed, self._clock(), lease=self._schedule.lease)
            uow.commit()
        findings = self._check(claim.cluster, actor=actor)
        try:
            [checked] = self._record([(claim, findings)], actor)
        except (StaleCluster, CheckOvertaken) as error:
            _log_dropped(claim.cluster, error)
            if isinstance(error, StaleCluster):
                raise
            with self._unit_of_work() as uow:
                uow.audit.append(self._refresh_event(actor, claim.cluster, claim.cluster))
                uow.commit()
                return uow.clusters.find_by_id(parsed)
        logger.info(
            "Cluster checked, cluster_id=%s, name=%s, status=%s",
            checked.id,
            checked.name,
            checked.status,
        )
        return checked

    # -- what checks leave behind --------------------------------------------------------

    def nodes(self, cluster_id: str | uuid.UUID, *, actor: Actor) -> NodeList:
        """The cluster's nodes as its last successful check read them."""
        authorize(actor, Permission.VIEW, "see clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            if not uow.clusters.exists(parsed):
                raise ClusterNotFound(parsed)
            return uow.nodes.find(parsed)

    def history(
        self, cluster_id: str | uuid.UUID, *, actor: Actor, limit: int, offset: int = 0
    ) -> HistoryPage:
        """The cluster's status changes, newest first."""
        authorize(actor, Permission.VIEW, "see clusters")
        parsed = parse_cluster_id(cluster_id)
        with self._unit_of_work() as uow:
            if not uow.clusters.exists(parsed):
                raise ClusterNotFound(parsed)
            return uow.history.page(parsed, limit=limit, offset=offset)

    # -- the steps ----------------------------------------------------------------------------

    def _check(self, cluster: Cluster, *, actor: Actor) -> _Findings:
        """The cluster with what its API says now (nothing stored yet).

        The check goes through the cluster's endpoints in turn
        (``attempt_order``) until one answers. A cluster that answers only
        through another node than the registered one is ``degraded`` at
        best, ``last_error`` saying why; one that answers through none is
        ``unhealthy`` with the registered endpoint's error.

        A check a person asked for logs in with the stored password (so a
        password changed on the cluster shows at once), tries the registered
        endpoint first and logs any failure; the registry's own checks reuse
        the kept ticket and log a failure only when it is not the one the
        last check found, so a cluster that is down does not log the same
        line every interval.

        A cluster that cannot be asked keeps its last known version, node
        count and node list; none of its nodes counts as online."""
        started = self._clock()
        by_person = not actor.is_system
        registered = cluster.target
        order = attempt_order(
            registered, cluster.endpoints, cluster.endpoint_health, now=started, fresh=by_person
        )
        unless = None if by_person else cluster.last_error
        attempts: CheckAttempts | None = None
        try:
            with _failures_logged(registered, unless=unless):
                attempts = self._proxmox.check_through(
                    order, cluster.credentials, fresh_login=by_person
                )
                reported = (
                    None
                    if attempts.report is not None
                    else _failure_to_report(attempts, registered)
                )
                _log_refused_by_policy(cluster, attempts, loudly=by_person, besides=reported)
                if reported is not None:
                    raise reported
        except ProxmoxError as error:
            self._finished(CheckOutcome.ERROR, started)
            failed = cluster.observed(
                at=started,
                status=ClusterStatus.UNHEALTHY,
                nodes_online=0,
                last_error=error.message,
                last_error_details=actionable_details(error),
                endpoint_health=_endpoint_health(cluster, attempts, started),
            )
            return _Findings(failed, started, None, error.message)
        except ProxmoxAuthenticationFailed as error:
            self._finished(CheckOutcome.UNAUTHORIZED, started)
            failed = cluster.observed(
                at=started,
                status=ClusterStatus.UNKNOWN,
                nodes_online=0,
                last_error=error.message,
                last_error_details=None,
                endpoint_health=_endpoint_health(cluster, attempts, started),
            )
            return _Findings(failed, started, None, error.message)
        self._finished(CheckOutcome.SUCCESS, started)
        assert attempts.report is not None and attempts.answered is not None
        report = attempts.report
        health = assess_health(report)
        endpoint_health = _endpoint_health(cluster, attempts, started)
        status, reason = health.status, health.reason
        last_error: str | None = None
        last_error_details: Mapping[str, Any] | None = None
        registered_state = endpoint_health.get(registered.api_endpoint)
        if (
            attempts.answered != registered
            and registered_state is not None
            and registered_state.failing
        ):
            # The registered node's API is down, another node's answers.
            trouble = attempts.failure_of(registered.api_endpoint)
            through = f"; answered through {attempts.answered.api_endpoint}"
            if trouble is not None:
                last_error = trouble.message + through
                if isinstance(trouble, ProxmoxError):
                    last_error_details = actionable_details(trouble)
            elif cluster.last_error and cluster.last_error.endswith(through):
                # Not tried again: what it said last time, a certificate to
                # trust included, stands until it is.
                last_error = cluster.last_error
                last_error_details = cluster.last_error_details
            else:
                last_error = f"{registered.api_endpoint} did not answer when last tried{through}"
            if status is ClusterStatus.HEALTHY:
                status = ClusterStatus.DEGRADED
            reason = f"{reason}; the registered endpoint does not answer ({last_error})"
            if by_person or last_error != cluster.last_error:
                logger.warning(
                    "Proxmox API request failed, endpoint=%s, error=%s",
                    registered.api_endpoint,
                    last_error,
                )
        checked = cluster.observed(
            at=started,
            status=status,
            node_count=health.node_count,
            nodes_online=health.nodes_online,
            cluster_name=health.cluster_name,
            proxmox_version=report.version,
            last_error=last_error,
            last_error_details=last_error_details,
            endpoint_health=endpoint_health,
        )
        return _Findings(checked, started, node_states(report), reason)

    def _finished(self, outcome: CheckOutcome, started: datetime) -> None:
        # The wall clock may step back; a check never took negative time.
        seconds = max(0.0, (self._clock() - started).total_seconds())
        self._observer.check_finished(outcome, seconds)

    def _record(self, batch: list[tuple[Claim, _Findings]], actor: Actor) -> list[Cluster]:
        """Store checks' findings and reschedule their clusters, in one unit
        of work with their node lists and, on a change of status, a history
        entry each. A claim makes ``claim.cluster.status`` the status being
        replaced: no other check can have recorded since it was granted."""
        written: list[tuple[Cluster, StatusChange | None]] = []
        with self._unit_of_work() as uow:
            for claim, findings in batch:
                checked = findings.cluster.rescheduled(
                    self._schedule.next_check(findings.at, self._random())
                )
                before = claim.cluster.status
                change = (
                    None
                    if checked.status == before
                    else StatusChange(
                        checked.id, findings.at, before, checked.status, findings.reason
                    )
                )
                uow.clusters.record_check(checked, claim=claim.token)
                if findings.nodes is not None:
                    uow.nodes.replace(checked.id, findings.nodes, findings.at)
                if change is not None:
                    uow.history.append(change, keep=self._history_limit)
                if not actor.is_system:
                    uow.audit.append(self._refresh_event(actor, claim.cluster, checked))
                written.append((checked, change))
            uow.commit()
        for checked, change in written:
            if change is not None:
                logger.info(
                    "Cluster status changed, cluster_id=%s, name=%s, from=%s, to=%s",
                    checked.id,
                    checked.name,
                    change.from_status,
                    change.to_status,
                )
            else:
                logger.debug(
                    "Cluster checked, cluster_id=%s, name=%s, status=%s",
                    checked.id,
                    checked.name,
                    checked.status,
                )
        return [checked for checked, _ in written]

    def _refresh_event(self, actor: Actor, before: Cluster, after: Cluster) -> AuditEvent:
        changes = (
            {}
            if after.status == before.status
            else {"status": [str(before.status), str(after.status)]}
        )
        return AuditEvent.success(
            AuditAction.CLUSTER_REFRESH,
            actor=actor,
            at=self._clock(),
            cluster=after,
            changes=changes,
        )


def _log_dropped(cluster: Cluster, error: Exception) -> None:
    if isinstance(error, StaleCluster):
        why = "the configuration changed meanwhile"
    elif isinstance(error, ClusterNotFound):
        why = "the cluster was deregistered meanwhile"
    else:
        why = "another check took over"
    logger.info("Cluster check dropped, %s, cluster_id=%s, name=%s", why, cluster.id, cluster.name)


def _log_refused_by_policy(
    cluster: Cluster,
    attempts: CheckAttempts,
    *,
    loudly: bool,
    besides: ClusterError | None = None,
) -> None:
    """Say that the network policy kept a check off one of the cluster's
    endpoints (a learned node address outside PROXMOXER_ALLOWED_NETWORKS,
    say): when it was not failing already, or a person asked. ``besides``
    is the failure the check reports, which is logged as that."""
    for target, error in attempts.failed:
        state = cluster.endpoint_health.get(target.api_endpoint)
        if (
            isinstance(error, NetworkPolicyRefused)
            and error is not besides
            and (loudly or state is None or not state.failing)
        ):
            logger.warning(
                "Connection refused by the network policy, endpoint=%s, error=%s",
                target.api_endpoint,
                error.message,
            )


def _failure_to_report(attempts: CheckAttempts, registered: ConnectionTarget) -> ClusterError:
    """Why a check through no endpoint succeeded: the registered endpoint's
    failure, or the first one's if it was not tried (the others' show in
    the endpoints' ``last_ok_at``)."""
    failures = {target.api_endpoint: error for target, error in attempts.failed}
    return failures.get(registered.api_endpoint) or attempts.failed[0][1]


def _endpoint_health(
    cluster: Cluster, attempts: CheckAttempts | None, at: datetime
) -> dict[str, EndpointHealth]:
    kept = kept_for(cluster.endpoint_health, cluster.api_endpoint, cluster.endpoints)
    return kept if attempts is None else after_check(kept, attempts, at)


def actionable_details(error: ProxmoxError) -> dict[str, str] | None:
    """What an operator may act on about a failed check: the fingerprint of
    the certificate a node presents now, to compare and pin
    (``PATCH {"fingerprint": …}``) when it no longer matches or is no longer
    trusted."""
    observed = (error.details or {}).get("fingerprint")
    if isinstance(error, ProxmoxTLSError) and isinstance(observed, str):
        return {"fingerprint": observed}
    return None
