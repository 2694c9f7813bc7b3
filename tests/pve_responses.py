"""Proxmox VE API answers as real PVE 7/8 sends them (docs/product-contract.md §5), and
where PVE 9 differs (``pve9=True``: the error text in the body's ``message`` too), for
requests-mock. Each helper registers one endpoint's behaviour on a Mocker."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs, unquote

import requests
import requests_mock

ENDPOINT = "https://pve.example.com:8006"
API = f"{ENDPOINT}/api2/json"
TICKET = "PVE:root@pam:6745A1B2::K3Ho1r9Ykx2f3Q0hVh4bV5w5m3bM0qCq2cX8q+vHfC2Q3Yx8zQ1s=="
CSRF_TOKEN = "6745A1B2:Qm9vc3RlZEJ5UHJveG1veGVyVGVzdHM"
TOKEN_VALUE = "0d8e3c52-7a1f-4b9e-9c62-5e2f1a7b3c4d"  # what PVE shows once, on creation


# The nodes' own API addresses, as every fixture here reports them: loopback.
NODE_ADDRESS = re.compile(r"^https://(127\.[0-9]+\.[0-9]+\.[0-9]+|\[::1\]):[0-9]+/")


def nodes_refuse_connections(mocker: requests_mock.Mocker) -> None:
    """Any node address a test does not mock refuses connections, as a node
    that is down does: a check that fails over to the nodes a cluster
    reported finds them down instead of asking the real network. Register
    first; what a test registers later wins."""
    mocker.register_uri(requests_mock.ANY, NODE_ADDRESS, exc=_refused())


def node(name: str, nodeid: int, *, online: bool = True, local: bool = False) -> dict[str, Any]:
    return {
        "type": "node",
        "id": f"node/{name}",
        "name": name,
        "online": int(online),
        "local": int(local),
        "nodeid": nodeid,
        "ip": f"127.0.0.{nodeid or 1}",  # loopback: nothing may point the service elsewhere
        "level": "",
    }


def cluster_entry(name: str, nodes: int, *, quorate: bool = True) -> dict[str, Any]:
    return {
        "type": "cluster",
        "id": "cluster",
        "name": name,
        "nodes": nodes,
        "quorate": int(quorate),
        "version": nodes,
    }


def three_node_cluster(
    *, offline: int = 0, quorate: bool = True, name: str = "prod"
) -> list[dict[str, Any]]:
    return [
        cluster_entry(name, 3, quorate=quorate),
        *(node(f"pve{i}", i, online=i > offline, local=i == 1) for i in (1, 2, 3)),
    ]


STANDALONE_NODE = [node("pve", 0, local=True)]  # no cluster entry, nodeid 0

NODES = [
    {
        "node": "pve1",
        "status": "online",
        "cpu": 0.031,
        "maxcpu": 16,
        "mem": 8_412_000_256,
        "maxmem": 67_316_121_600,
        "uptime": 1_209_600,
        "ssl_fingerprint": "AB:" * 31 + "AB",
        "level": "",
        "type": "node",
        "id": "node/pve1",
    },
    {"node": "pve2", "status": "offline", "type": "node", "id": "node/pve2"},
]


def node_entry(name: str, *, online: bool = True, fingerprint: str = "AB") -> dict[str, Any]:
    """One ``GET /nodes`` entry: offline nodes come without usage figures."""
    entry: dict[str, Any] = {
        "node": name,
        "status": "online" if online else "offline",
        "ssl_fingerprint": ":".join([fingerprint] * 32),
        "level": "",
        "type": "node",
        "id": f"node/{name}",
    }
    if online:
        entry.update(
            cpu=0.031, maxcpu=16, mem=8_412_000_256, maxmem=67_316_121_600, uptime=1_209_600
        )
    return entry


def three_nodes(*, offline: int = 0, certificates: int = 0) -> list[dict[str, Any]]:
    """``GET /nodes`` of ``three_node_cluster``: the first ``offline`` nodes
    offline; ``certificates`` (1 to 15) gives the nodes other certificates."""
    return [
        node_entry(
            f"pve{i}",
            online=i > offline,
            fingerprint=f"{i}A" if not certificates else f"{certificates:X}{i}",
        )
        for i in (1, 2, 3)
    ]


def ticket_page(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    """``GET /access/ticket``: PVE answers it to anyone with ``{"data": null}``;
    the client uses it to open its second connection during the login."""
    m.get(f"{endpoint}/api2/json/access/ticket", json={"data": None})


def login_ok(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT, user: str = "root@pam") -> None:
    data = {
        "username": user,
        "ticket": TICKET,
        "CSRFPreventionToken": CSRF_TOKEN,
        "cap": {"nodes": {}, "vms": {}, "storage": {}, "access": {}, "dc": {}, "sdn": {}},
        "clustername": "prod",
    }
    ticket_page(m, endpoint=endpoint)
    m.post(f"{endpoint}/api2/json/access/ticket", json={"data": data})


def error_body(message: str, *, pve9: bool) -> dict[str, Any]:
    """The JSON formatter's error body: ``{"data": null}``, and from
    libpve-http-server-perl 5.2 (PVE 8.3, every PVE 9) the message as well,
    with the newline PVE's errors end in."""
    return {"data": None, "message": f"{message}\n"} if pve9 else {"data": None}


def login_refused(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT, pve9: bool = False) -> None:
    ticket_page(m, endpoint=endpoint)
    m.post(
        f"{endpoint}/api2/json/access/ticket",
        status_code=401,
        reason="authentication failure",
        json=error_body("authentication failure", pve9=pve9),
    )


# GET /access/domains (pve-access-control src/PVE/API2/Domains.pm), which PVE
# answers without a login: every PVE's two realms and an OpenID Connect one.
REALMS = [
    {"realm": "pam", "type": "pam", "comment": "Linux PAM standard authentication"},
    {"realm": "pve", "type": "pve", "comment": "Proxmox VE authentication server"},
    {"realm": "oidc", "type": "openid", "comment": "Company SSO"},
]


def domains(
    m: requests_mock.Mocker, realms: list[dict[str, Any]] = REALMS, *, endpoint: str = ENDPOINT
) -> None:
    m.get(f"{endpoint}/api2/json/access/domains", json={"data": realms})


def login_needs_tfa(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    data = {
        "username": "root@pam",
        "ticket": "PVE:!tfa!root@pam:6745A1B2::c2lnbmF0dXJl",
        "CSRFPreventionToken": CSRF_TOKEN,
        "NeedTFA": 1,
        "cap": {},
    }
    ticket_page(m, endpoint=endpoint)
    m.post(f"{endpoint}/api2/json/access/ticket", json={"data": data})


def version(m: requests_mock.Mocker, number: str = "8.2.4", *, endpoint: str = ENDPOINT) -> None:
    release = number.split("-")[0].rsplit(".", 1)[0] if "-" not in number else number.split("-")[0]
    data = {"version": number, "release": release, "repoid": "faa83925c9641325"}
    m.get(f"{endpoint}/api2/json/version", json={"data": data})


def cluster_status(
    m: requests_mock.Mocker, entries: list[dict[str, Any]], *, endpoint: str = ENDPOINT
) -> None:
    m.get(f"{endpoint}/api2/json/cluster/status", json={"data": entries})


def cluster_status_forbidden(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    m.get(
        f"{endpoint}/api2/json/cluster/status",
        status_code=403,
        reason="Permission check failed (/, Sys.Audit)",
        json={"data": None},
    )


def nodes(
    m: requests_mock.Mocker, entries: list[dict[str, Any]] = NODES, *, endpoint: str = ENDPOINT
) -> None:
    m.get(f"{endpoint}/api2/json/nodes", json={"data": entries})


def healthy_cluster(
    m: requests_mock.Mocker, *, endpoint: str = ENDPOINT, name: str = "prod", certificates: int = 0
) -> None:
    """Login, PVE 8.2.4, three nodes online and quorate; another ``name`` and
    ``certificates`` (1 to 15) make another PVE cluster of the same shape."""
    login_ok(m, endpoint=endpoint)
    version(m, endpoint=endpoint)
    cluster_status(m, three_node_cluster(name=name), endpoint=endpoint)
    nodes(m, three_nodes(certificates=certificates), endpoint=endpoint)


def healthy_clusters(m: requests_mock.Mocker, names: Iterable[str]) -> dict[str, str]:
    """One healthy PVE cluster per name, at ``https://<name>.example.com:8006``,
    each with its own PVE cluster name and node certificates: as many
    clusters as names, which the registry lets register once each. Returns
    each name's endpoint."""
    endpoints = {}
    for index, name in enumerate(names):
        endpoint = f"https://{name.lower()}.example.com:8006"
        healthy_cluster(m, endpoint=endpoint, name=name.lower(), certificates=index + 1)
        endpoints[name] = endpoint
    return endpoints


def unreachable(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    """Every call refused at the TCP level, as a node that is down."""
    m.register_uri(requests_mock.ANY, re.compile(re.escape(endpoint)), exc=_refused())


def _refused() -> requests.exceptions.ConnectionError:
    return requests.exceptions.ConnectionError(ConnectionRefusedError(111, "Connection refused"))


def ticket_refused(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    """A kept ticket no longer accepted (its 401, as PVE words it), and the
    stored password refused too: what a check sees once a password changed
    and its ticket ran out."""
    for path in ("version", "cluster/status", "nodes"):
        m.get(
            f"{endpoint}/api2/json/{path}",
            status_code=401,
            reason="permission denied - invalid PVE ticket",
        )
    login_refused(m, endpoint=endpoint)


def token_refused_pve9(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    """A token PVE 9.1.5 and later refuse: whatever is wrong with it, the
    reason is "Authentication failed!" and the body empty (auth_handler)."""
    for path in ("version", "cluster/status", "nodes"):
        m.get(
            f"{endpoint}/api2/json/{path}",
            status_code=401,
            reason="Authentication failed!",
            content=b"",
        )


def api_calls(m: requests_mock.Mocker) -> list:
    """The calls that carry credentials or read data: all but the
    connection-opening ``GET /access/ticket``."""
    return [
        call
        for call in m.request_history
        if not (call.method == "GET" and call.path == "/api2/json/access/ticket")
    ]


# -- API tokens and ACLs (pve-access-control src/PVE/API2/User.pm, ACL.pm) -----------------------

TOKEN_PATH_RE = re.compile(r"/access/users/(?P<userid>[^/]+)/token/(?P<name>[^/]+)$")


def _token_path(endpoint: str) -> re.Pattern[str]:
    return re.compile(re.escape(f"{endpoint}/api2/json") + TOKEN_PATH_RE.pattern)


def token_created(
    m: requests_mock.Mocker, *, endpoint: str = ENDPOINT, value: str = TOKEN_VALUE
) -> None:
    """``POST …/token/{tokenid}``: the new token's id and its value, shown
    this once (``generate_token``)."""

    def answer(request: Any, context: Any) -> dict[str, Any]:
        match = TOKEN_PATH_RE.search(unquote(request.path))
        assert match is not None
        comment = parse_qs(request.text or "").get("comment", [""])[0]
        info = {"privsep": parse_qs(request.text or "").get("privsep", ["1"])[0]}
        if comment:
            info["comment"] = comment
        full = f"{match['userid']}!{match['name']}"
        return {"data": {"full-tokenid": full, "info": info, "value": value}}

    m.post(_token_path(endpoint), json=answer)


def token_refused(
    m: requests_mock.Mocker, method: str = "POST", *, endpoint: str = ENDPOINT
) -> None:
    """Neither the token's user nor ``User.Modify`` on its groups: PVE's
    ``raise_perm_exc()`` without a path."""
    m.register_uri(
        method,
        _token_path(endpoint),
        status_code=403,
        reason="Permission check failed",
        json={"data": None},
    )


def token_exists(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    m.post(
        _token_path(endpoint),
        status_code=400,
        reason="Parameter verification failed.",
        json={"data": None, "errors": {"tokenid": "Token already exists."}},
    )


def token_deleted(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    m.delete(_token_path(endpoint), json={"data": None})


def acl_granted(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    """``PUT /access/acl`` (``update_acl``): nothing to return."""
    m.put(f"{endpoint}/api2/json/access/acl", json={"data": None})


def acl_refused(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    """No ``Permissions.Modify`` on ``/`` (RPCEnvironment ``check_perm_modify``)."""
    m.put(
        f"{endpoint}/api2/json/access/acl",
        status_code=403,
        reason="Permission check failed (/, Permissions.Modify)",
        json={"data": None},
    )


def token_hand_off(m: requests_mock.Mocker, *, endpoint: str = ENDPOINT) -> None:
    """A cluster where root@pam may hand off: login, token, ACL, delete,
    and the reads the new token is verified with."""
    healthy_cluster(m, endpoint=endpoint)
    token_created(m, endpoint=endpoint)
    acl_granted(m, endpoint=endpoint)
    token_deleted(m, endpoint=endpoint)
