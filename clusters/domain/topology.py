"""A cluster's topology as the registry uses it: the addresses it may reach
the cluster through, and the order a check tries them in
(docs/product-contract.md §10; docs/operations.md, "Endpoints and
failover"). What identifies a PVE cluster is ``identity.py``; how endpoints
are stored and shown, ``endpoint_documents.py``.

The registered endpoint is the one the operator gave. Further endpoints are
the other nodes' own API addresses, learned at registration from what the
cluster reports over the authenticated connection: each node's address
(``ip`` of ``/cluster/status``) and its certificate's fingerprint
(``ssl_fingerprint`` of ``/nodes``), to which that endpoint is pinned.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from clusters.domain.cluster import ConnectionTarget
from clusters.domain.endpoint import Endpoint, parse_endpoint
from clusters.domain.errors import ClusterError
from clusters.domain.fields import FieldInvalid, normalise_fingerprint
from clusters.domain.health import ProxmoxReport

# More than any PVE cluster has nodes (corosync's practical limit is far
# lower); a report listing more does not make a check try them all.
MAX_ENDPOINTS = 64
# How long an endpoint whose last attempt failed is tried after the others;
# then once first again, to notice that it is back.
FAILING_RETRY_AFTER = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class NodeEndpoint:
    """A further address of a cluster's API: one node's own, pinned to that
    node's certificate when its fingerprint is known."""

    url: str
    node: str | None = None
    fingerprint: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"url": self.url, "node": self.node, "fingerprint": self.fingerprint}


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """When a check last got an answer through an endpoint, and when one
    last did not."""

    last_ok_at: datetime | None = None
    last_failed_at: datetime | None = None

    @property
    def failing(self) -> bool:
        """Its last attempt failed: tried after the others until it answers."""
        failed, ok = self.last_failed_at, self.last_ok_at
        return failed is not None and (ok is None or failed > ok)


def local_node(report: ProxmoxReport) -> str | None:
    """The node that answered (``local`` in ``/cluster/status``)."""
    for entry in report.cluster_status or ():
        if entry.type == "node" and entry.local:
            return entry.name
    return None


def discovered_endpoints(report: ProxmoxReport, registered: Endpoint) -> tuple[NodeEndpoint, ...]:
    """Every other node's API address, ``https://<ip>:<registered port>``,
    pinned to its own certificate: only nodes that report both an address
    and a fingerprint, the answering node left out (it is the registered
    endpoint). Nothing behind a reverse proxy's path prefix: the nodes'
    own addresses are what the proxy hides, and its port is not theirs."""
    if registered.prefix:
        return ()
    fingerprints = {node.node: node.ssl_fingerprint for node in report.nodes or ()}
    answering = local_node(report)
    found: list[NodeEndpoint] = []
    for entry in report.cluster_status or ():
        if entry.type != "node" or entry.name == answering or not entry.ip:
            continue
        fingerprint = node_fingerprint(fingerprints.get(entry.name))
        host = _address(entry.ip)
        if fingerprint is None or host is None:
            continue
        url = f"https://{host}:{registered.port}"
        if url != registered.url and all(url != known.url for known in found):
            found.append(NodeEndpoint(url, entry.name, fingerprint))
    found.sort(key=lambda endpoint: endpoint.node or "")
    return tuple(found[:MAX_ENDPOINTS])


def matched_to_nodes(
    endpoints: Sequence[NodeEndpoint], report: ProxmoxReport
) -> tuple[NodeEndpoint, ...]:
    """Endpoints set by hand, each named after the node whose address it
    is, where the report shows one."""
    by_address: dict[str, str] = {}
    for entry in report.cluster_status or ():
        host = _address(entry.ip) if entry.type == "node" and entry.ip else None
        if host is not None:
            by_address[host] = entry.name
    return tuple(
        NodeEndpoint(
            endpoint.url,
            by_address.get(parse_endpoint(endpoint.url).host, endpoint.node),
            endpoint.fingerprint,
        )
        for endpoint in endpoints
    )


def parse_endpoints(raw: object) -> tuple[NodeEndpoint, ...]:
    """``[{"url": …, "fingerprint": …}]`` as a PATCH gives it: each url by
    the rules of ``api_endpoint``, each fingerprint as a pin's. Raises
    FieldInvalid naming the first entry that breaks a rule."""
    if not isinstance(raw, list | tuple):
        raise FieldInvalid('endpoints must be a list of {"url", "fingerprint"} objects')
    if len(raw) > MAX_ENDPOINTS:
        raise FieldInvalid(f"endpoints may list at most {MAX_ENDPOINTS} addresses")
    parsed: list[NodeEndpoint] = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("url"), str):
            raise FieldInvalid(f'endpoints[{index}] must be an object with a "url"')
        unknown = sorted(set(item) - {"url", "fingerprint", "node"})
        if unknown:
            raise FieldInvalid(f"endpoints[{index}] has unknown keys: {', '.join(unknown)}")
        try:
            url = parse_endpoint(item["url"]).url
            pin = item.get("fingerprint")
            if pin is not None and not isinstance(pin, str):
                raise FieldInvalid("Fingerprint must be a string")
            fingerprint = normalise_fingerprint(pin) if pin else None
        except FieldInvalid as error:
            raise FieldInvalid(f"endpoints[{index}]: {error}") from None
        if any(url == known.url for known in parsed):
            raise FieldInvalid(f"endpoints[{index}]: {url} is listed twice")
        parsed.append(NodeEndpoint(url, None, fingerprint))
    return tuple(parsed)


def attempt_order(
    registered: ConnectionTarget,
    endpoints: Sequence[NodeEndpoint],
    health: Mapping[str, EndpointHealth],
    *,
    now: datetime,
    retry_after: timedelta = FAILING_RETRY_AFTER,
    fresh: bool = False,
) -> list[ConnectionTarget]:
    """The endpoints a check tries, in turn.

    The one that answered last comes first, then the others in their order
    (the registered one first), and at the end those whose last attempt
    failed within ``retry_after``: a node down for maintenance costs a
    check nothing while another answers. Once ``retry_after`` has passed
    since it failed, it is tried first, once, so that a check notices when
    it is back (failing again, it waits another ``retry_after``).
    ``fresh`` (a person's refresh) tries them in their order, the
    registered one first, whatever happened before.
    """
    targets = [registered] + [
        ConnectionTarget(
            endpoint.url,
            verify_tls=registered.verify_tls if endpoint.fingerprint is None else True,
            fingerprint=endpoint.fingerprint,
        )
        for endpoint in endpoints
        if endpoint.url != registered.api_endpoint
    ]
    if fresh:
        return targets
    unknown = EndpointHealth()

    def failing(target: ConnectionTarget) -> bool:
        state = health.get(target.api_endpoint, unknown)
        failed = state.last_failed_at
        return state.failing and failed is not None and failed > now - retry_after

    def due_again(target: ConnectionTarget) -> bool:
        return health.get(target.api_endpoint, unknown).failing and not failing(target)

    answered = [
        (last_ok, target.api_endpoint)
        for target in targets
        if (last_ok := health.get(target.api_endpoint, unknown).last_ok_at) is not None
        and not health.get(target.api_endpoint, unknown).failing
    ]
    last_good = max(answered)[1] if answered else None

    def rank(indexed: tuple[int, ConnectionTarget]) -> tuple[int, int]:
        index, target = indexed
        if due_again(target):
            group = 0
        elif failing(target):
            group = 3
        else:
            group = 1 if target.api_endpoint == last_good else 2
        return (group, index)

    return [target for _, target in sorted(enumerate(targets), key=rank)]


def after_check(
    health: Mapping[str, EndpointHealth], attempts: CheckAttempts, at: datetime
) -> dict[str, EndpointHealth]:
    """``health`` with what a check through the endpoints found: the one
    that answered, and each that failed, at ``at``; the others as they were."""
    updated = dict(health)
    for target, _ in attempts.failed:
        before = updated.get(target.api_endpoint, EndpointHealth())
        updated[target.api_endpoint] = EndpointHealth(before.last_ok_at, at)
    if attempts.answered is not None:
        before = updated.get(attempts.answered.api_endpoint, EndpointHealth())
        updated[attempts.answered.api_endpoint] = EndpointHealth(at, before.last_failed_at)
    return updated


def kept_for(
    health: Mapping[str, EndpointHealth], api_endpoint: str, endpoints: Sequence[NodeEndpoint]
) -> dict[str, EndpointHealth]:
    """``health`` of the endpoints a cluster has, forgetting any it no longer has."""
    urls = {api_endpoint, *(endpoint.url for endpoint in endpoints)}
    return {url: state for url, state in health.items() if url in urls}


def node_fingerprint(raw: str | None) -> str | None:
    """A node's certificate fingerprint as PVE reports it, normalised; None
    for anything that is not one."""
    if not raw:
        return None
    try:
        return normalise_fingerprint(raw)
    except FieldInvalid:
        return None


def _address(ip: str) -> str | None:
    """An IP address as it goes into a URL; None for anything else."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return f"[{address.compressed}]" if address.version == 6 else address.compressed


@dataclass(frozen=True, slots=True)
class CheckAttempts:
    """How a check through a cluster's endpoints went: the report of the
    first that answered (None when none did) and what each one tried before
    it failed with, in the order tried."""

    report: ProxmoxReport | None
    answered: ConnectionTarget | None
    failed: tuple[tuple[ConnectionTarget, ClusterError], ...] = ()

    def failure_of(self, url: str) -> ClusterError | None:
        return next((error for target, error in self.failed if target.api_endpoint == url), None)
