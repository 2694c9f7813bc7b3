"""The situations the simulator can play, each as PVE 7/8 would answer it.

A scenario is data: what ``/version``, ``/cluster/status`` and ``/nodes``
return, whether a password login needs a second factor, and which failure
(if any) replaces the normal answers. The shapes follow SPEC §5.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CLUSTER_NAME = "sim"
PVE8_VERSION = {"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"}
PVE7_VERSION = {"version": "7.4-13", "release": "7.4", "repoid": "6f2f0a33"}


class Failure(StrEnum):
    """Ways a scenario breaks the normal answers."""

    SLOW = "slow"  # every API answer waits slow_delay seconds before its first byte
    TRICKLE = "trickle"  # /version answers at once, then sends its body a byte at a time
    SERVER_ERROR = "server_error"  # reads after login answer 500
    GARBAGE = "garbage"  # every API answer is an HTML page, not the JSON envelope
    REDIRECT = "redirect"  # every API answer is a 302 to the simulator's /trap
    OVERSIZED = "oversized"  # /version is 2 MiB of valid JSON, Content-Length declared
    OVERSIZED_UNANNOUNCED = "oversized_unannounced"  # the same, close-delimited


@dataclass(frozen=True)
class NodeSpec:
    name: str
    nodeid: int
    online: bool = True
    visible: bool = True  # whether /nodes shows it to an account without Sys.Audit on /


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    nodes: tuple[NodeSpec, ...]
    version: dict[str, str]
    clustered: bool = True
    quorate: bool = True
    second_factor: bool = False  # password logins answer NeedTFA; tokens still work
    sys_audit: bool = True  # False: /cluster/status is 403, /nodes filtered
    failure: Failure | None = None

    def cluster_status(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        if self.clustered:
            entries.append(
                {
                    "type": "cluster",
                    "id": "cluster",
                    "name": CLUSTER_NAME,
                    "nodes": len(self.nodes),
                    "quorate": int(self.quorate),
                    "version": len(self.nodes) + 2,
                }
            )
        for index, node in enumerate(self.nodes):
            entries.append(
                {
                    "type": "node",
                    "id": f"node/{node.name}",
                    "name": node.name,
                    "online": int(node.online),
                    "local": int(index == 0),
                    "nodeid": node.nodeid,
                    "ip": f"192.0.2.{10 + index}",
                    "level": "",
                }
            )
        return entries

    def nodes_listing(self, ssl_fingerprint: str) -> list[dict[str, Any]]:
        listing = []
        for node in self.nodes:
            if not self.sys_audit and not node.visible:
                continue
            entry: dict[str, Any] = {
                "type": "node",
                "id": f"node/{node.name}",
                "node": node.name,
                "status": "online" if node.online else "offline",
            }
            if node.online:  # PVE has no usage figures for a node it cannot reach
                entry.update(
                    cpu=0.0123,
                    maxcpu=16,
                    mem=8_412_000_256,
                    maxmem=67_316_121_600,
                    disk=5_368_709_120,
                    maxdisk=100_861_726_720,
                    uptime=1_209_600,
                    level="",
                    ssl_fingerprint=ssl_fingerprint,
                )
            listing.append(entry)
        return listing

    def login_data(self, username: str, ticket: str, csrf_token: str) -> dict[str, Any]:
        data: dict[str, Any] = {
            "username": username,
            "ticket": ticket,
            "CSRFPreventionToken": csrf_token,
            "cap": _ROOT_CAPABILITIES if not self.second_factor else {},
        }
        if self.second_factor:
            data["NeedTFA"] = 1
        if self.clustered:
            data["clustername"] = CLUSTER_NAME
        return data


_ROOT_CAPABILITIES = {
    "vms": {"VM.Audit": 1, "VM.PowerMgmt": 1, "VM.Console": 1, "VM.Allocate": 1},
    "storage": {"Datastore.Audit": 1, "Datastore.Allocate": 1},
    "access": {"User.Modify": 1, "Group.Allocate": 1},
    "nodes": {"Sys.Audit": 1, "Sys.Modify": 1, "Sys.PowerMgmt": 1, "Sys.Console": 1},
    "dc": {"Sys.Audit": 1, "Sys.Modify": 1},
    "sdn": {"SDN.Audit": 1, "SDN.Allocate": 1},
    "mapping": {"Mapping.Audit": 1, "Mapping.Use": 1},
}

_THREE_NODES = (NodeSpec("pve1", 1), NodeSpec("pve2", 2), NodeSpec("pve3", 3))


def _healthy(name: str, description: str, **changes: Any) -> Scenario:
    return Scenario(name, description, _THREE_NODES, PVE8_VERSION, **changes)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        _healthy("healthy", "PVE 8.2.4, 3-node cluster, quorate, every node online"),
        Scenario(
            "degraded",
            "PVE 8.2.4, 3-node cluster, quorate, pve3 offline",
            (NodeSpec("pve1", 1), NodeSpec("pve2", 2), NodeSpec("pve3", 3, online=False)),
            PVE8_VERSION,
        ),
        Scenario(
            "no-quorum",
            "PVE 8.2.4, 3-node cluster without quorum: pve2 and pve3 offline",
            (
                NodeSpec("pve1", 1),
                NodeSpec("pve2", 2, online=False),
                NodeSpec("pve3", 3, online=False),
            ),
            PVE8_VERSION,
            quorate=False,
        ),
        Scenario(
            "standalone-pve7",
            "PVE 7.4-13, a standalone node (no cluster entry, nodeid 0)",
            (NodeSpec("pve", 0),),
            PVE7_VERSION,
            clustered=False,
        ),
        _healthy(
            "second-factor",
            "password logins need a second factor (NeedTFA); API tokens work",
            second_factor=True,
        ),
        Scenario(
            "no-permission",
            "the account lacks Sys.Audit on /: /cluster/status is 403, /nodes shows 2 of 3",
            (NodeSpec("pve1", 1), NodeSpec("pve2", 2), NodeSpec("pve3", 3, visible=False)),
            PVE8_VERSION,
            sys_audit=False,
        ),
        _healthy("slow", "every API answer waits slow_delay seconds", failure=Failure.SLOW),
        _healthy(
            "trickle",
            "/version sends its body one byte per trickle_interval seconds",
            failure=Failure.TRICKLE,
        ),
        _healthy(
            "server-error",
            "login works, every read answers 500 Internal Server Error",
            failure=Failure.SERVER_ERROR,
        ),
        _healthy("garbage", "every API answer is an HTML page, not JSON", failure=Failure.GARBAGE),
        _healthy(
            "redirect",
            "every API answer is a 302 to https://<simulator>/trap/… (which records visits)",
            failure=Failure.REDIRECT,
        ),
        _healthy(
            "oversized",
            "/version answers 2 MiB of valid JSON with Content-Length",
            failure=Failure.OVERSIZED,
        ),
        _healthy(
            "oversized-unannounced",
            "/version answers 2 MiB of valid JSON without Content-Length",
            failure=Failure.OVERSIZED_UNANNOUNCED,
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name`` (``_`` and ``-`` alike); KeyError lists the choices."""
    key = name.strip().lower().replace("_", "-")
    try:
        return SCENARIOS[key]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}") from None
