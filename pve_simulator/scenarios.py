"""The situations the simulator can play, each as PVE would answer it.

A scenario is data: the cluster's shape (its nodes, which are offline,
whether it is a cluster at all), whether password logins need a second
factor, what the login account may do, and which failure (if any) replaces
the normal answers. The release (``pve7``/``pve8``/``pve9``) is a separate
choice, the profile (``profiles.py``); only ``standalone-pve7`` pins one.

In multi-node mode the nodes are the simulator's own listeners (a stopped
one is offline); a scenario then adds its offline marks by node name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    nodes: tuple[NodeSpec, ...]
    clustered: bool = True
    second_factor: bool = False  # password logins answer NeedTFA; tokens still work
    # None: the account keeps the roles it was given; a mapping replaces them
    # (path -> roles), {} leaves it without any privilege.
    account_roles: dict[str, tuple[str, ...]] | None = None
    profile: str | None = None  # pins a release (profiles.py) while it plays
    failure: Failure | None = None

    def offline(self, node: str) -> bool:
        return any(spec.name == node and not spec.online for spec in self.nodes)


_THREE_NODES = (NodeSpec("pve1", 1), NodeSpec("pve2", 2), NodeSpec("pve3", 3))


def _healthy(name: str, description: str, **changes: object) -> Scenario:
    return Scenario(name, description, _THREE_NODES, **changes)  # type: ignore[arg-type]


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        _healthy("healthy", "3-node cluster, quorate, every node online"),
        Scenario(
            "degraded",
            "3-node cluster, quorate, pve3 offline",
            (NodeSpec("pve1", 1), NodeSpec("pve2", 2), NodeSpec("pve3", 3, online=False)),
        ),
        Scenario(
            "no-quorum",
            "3-node cluster without quorum: pve2 and pve3 offline",
            (
                NodeSpec("pve1", 1),
                NodeSpec("pve2", 2, online=False),
                NodeSpec("pve3", 3, online=False),
            ),
        ),
        Scenario(
            "standalone",
            "a standalone node (no cluster entry, nodeid 0)",
            (NodeSpec("pve", 0),),
            clustered=False,
        ),
        Scenario(
            "standalone-pve7",
            "a standalone PVE 7.4-13 node, whatever the profile",
            (NodeSpec("pve", 0),),
            clustered=False,
            profile="pve7",
        ),
        _healthy(
            "second-factor",
            "password logins need a second factor (NeedTFA); API tokens work",
            second_factor=True,
        ),
        _healthy(
            "no-permission",
            "the account has no privilege at all: /cluster/status is 403, /nodes lists "
            "every node without usage figures, the login answer has no clustername",
            account_roles={},
        ),
        _healthy(
            "auditor",
            "the account is a PVEAuditor on /: it reads everything, may change nothing",
            account_roles={"/": ("PVEAuditor",)},
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
