"""Many simulated clusters at once, for benchmarks of a registry that checks
hundreds or thousands of clusters.

Each cluster is a whole ``PveSimulator`` (its own name, nodes, certificate,
credentials or shared ones, tickets, request log and counts) on its own
loopback address (127.1.0.1, 127.1.0.2, … 127.1.0.254, 127.1.1.1, …) and one
shared port. All their listening sockets share the process's one acceptor
thread; a connection gets a thread only while it is open, so an idle fleet
costs no CPU. The file-descriptor limit is raised as far as the hard limit
allows (``transport.raise_file_limit``).

``GET /_simulator/counts`` on any cluster shows every cluster's logins and
reads, ``DELETE`` resets them: a test can assert that each cluster was
checked exactly once per interval.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from typing import Any

from pve_simulator.server import PveSimulator
from pve_simulator.transport import Acceptor


def fleet_address(network: str, index: int) -> str:
    """The ``index``-th (from 0) cluster's address in ``network`` (``127.1``)."""
    third, fourth = divmod(index, 254)
    if third > 255:
        raise ValueError("at most 65024 clusters fit in one /16")
    return f"{network}.{third}.{fourth + 1}"


class VirtualClusters:
    """``count`` independent simulated clusters on one port."""

    def __init__(
        self,
        count: int,
        *,
        port: int = 0,
        network: str = "127.1",
        shared_credentials: bool = True,
        name_prefix: str = "sim",
        log: Callable[[str], None] | None = None,
        **settings: Any,
    ) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        if not network.startswith("127.") or network.count(".") != 1:
            raise ValueError("network is the first two octets of a loopback /16, e.g. 127.1")
        self.port = port
        self.network = network
        password = settings.pop("password", None) or secrets.token_urlsafe(18)
        token_secret = settings.pop("token_secret", None) or str(uuid.uuid4())
        width = max(4, len(str(count)))
        self.clusters: list[PveSimulator] = []
        for index in range(count):
            name = f"{name_prefix}{index + 1:0{width}d}"
            self.clusters.append(
                PveSimulator(
                    hosts=[fleet_address(network, index)],
                    port=port,
                    cluster_name=name,
                    password=password if shared_credentials else None,
                    token_secret=token_secret if shared_credentials else None,
                    log=(lambda line, name=name: log(f"{name} {line}")) if log else None,
                    fleet=self,
                    **settings,
                )
            )

    def start(self) -> VirtualClusters:
        first = self.clusters[0]
        first.start()
        self.port = first.port
        try:
            for cluster in self.clusters[1:]:
                cluster.port = self.port
                cluster.start()
        except OSError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for cluster in self.clusters:
            if any(node.running for node in cluster.nodes):
                cluster.stop()

    def __enter__(self) -> VirtualClusters:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __len__(self) -> int:
        return len(self.clusters)

    def configure(self, **settings: Any) -> None:
        """The same settings for every cluster (see ``PveSimulator.configure``)."""
        for cluster in self.clusters:
            cluster.configure(**settings)

    def counts(self) -> dict[str, dict[str, int]]:
        return {cluster.cluster_name: cluster.counts() for cluster in self.clusters}

    def reset_counts(self) -> None:
        for cluster in self.clusters:
            cluster.reset_counts()

    def summary(self) -> dict[str, Any]:
        """What ``GET /_simulator/clusters`` shows (no secrets)."""
        return {
            "count": len(self.clusters),
            "port": self.port,
            "listeners": Acceptor.shared().listeners,
            "file_limit": Acceptor.shared().file_limit,
            "clusters": [
                {
                    "name": cluster.cluster_name,
                    "url": cluster.url,
                    "fingerprint": cluster.fingerprint,
                    "scenario": cluster.scenario.name,
                    "profile": cluster.profile.name,
                }
                for cluster in self.clusters
            ],
        }
