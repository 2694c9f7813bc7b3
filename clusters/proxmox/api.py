"""The Proxmox VE API on the transport: one short method per remote call.

``PveSession.login`` proves the credentials and returns a ``PveSession``:
a transport connection plus the headers that authenticate each call on it
(the ticket as the ``PVEAuthCookie`` and, on every call but a GET, the
``CSRFPreventionToken``; or the ``PVEAPIToken`` header, which needs neither
a login call nor CSRF). ``session.on(connection)`` carries the same login
to another connection, so two calls can run side by side;
``PveSession.with_ticket`` resumes a kept ticket without a call, and
``session.renew()`` trades it for a new one (clusters/proxmox/tickets.py).
A call returns domain objects, or raises the domain's Proxmox errors (the
transport's, or ``ProxmoxBadResponse`` when the answer lacks what the call
promises).

A refused password login asks ``GET /access/domains`` (``realm_type``, no
login needed) whether the account's realm is an OpenID Connect one, where no
password can work, and then says so.

A further remote call is one more method of a few lines, as
``grant_token_role`` shows (``PUT /access/acl``; a non-GET, so the session
adds the CSRF token of a ticket login).

Response shapes: docs/product-contract.md §5; the token and ACL calls are
pve-access-control's ``src/PVE/API2/User.pm`` (``generate_token``,
``remove_token``) and ``src/PVE/API2/ACL.pm`` (``update_acl``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from clusters.domain import (
    ClusterStatusEntry,
    Credentials,
    NodeEntry,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxSecondFactorRequired,
    Secret,
    TokenCredentials,
)
from clusters.proxmox.tickets import Ticket
from clusters.proxmox.transport import Connection

TICKET_PATH = "/access/ticket"
DOMAINS_PATH = "/access/domains"
_BUILT_IN_REALMS = ("pam", "pve")
# PVE's versions: 8.2.4, 7.4-13, 9.1.2. Anything else did not come from PVE,
# and is neither stored nor shown (it once carried a database URL).
_VERSION_RE = re.compile(r"[0-9]+\.[0-9]+(?:[.-][0-9]+)*")
_VERSION_MAX_LENGTH = 32
_NAME_MAX_LENGTH = 255  # node and cluster names: PVE's are far shorter
_ADDRESS_MAX_LENGTH = 64  # an IPv6 address with a zone
_FINGERPRINT_MAX_LENGTH = 95  # 32 hex pairs and 31 colons


def realm_type(connection: Connection, realm: str) -> str | None:
    """The type of ``realm`` (``pam``, ``pve``, ``ldap``, ``ad``,
    ``openid``) as ``GET /access/domains`` lists it, which PVE answers to
    anyone; None when the realm is not listed or the call fails in any way,
    since this only ever explains another error. ``pam`` and ``pve`` are
    every PVE's own realms (src/PVE/Auth/Plugin.pm): no call for them."""
    if realm in _BUILT_IN_REALMS:
        return realm
    try:
        domains = connection.call("GET", DOMAINS_PATH)
    except Exception:  # noqa: BLE001 - an explanation that fails leaves the error it explains
        return None
    if not isinstance(domains, list):
        return None
    for entry in domains:
        if isinstance(entry, dict) and entry.get("realm") == realm:
            kind = entry.get("type")
            return kind if isinstance(kind, str) else None
    return None


def open_early(connection: Connection) -> None:
    """Have ``connection`` connect before its first authenticated call, with
    the one call PVE answers to anyone at once: ``GET /access/ticket`` (a
    no-op returning ``{"data": null}``). No credentials go with it."""
    connection.open(TICKET_PATH)


class PveSession:
    """An authenticated conversation with one cluster: a connection and the
    headers that prove who is calling. Its repr never shows them."""

    def __init__(
        self,
        connection: Connection,
        headers: Mapping[str, str],
        csrf_token: str | None = None,
        ticket: Ticket | None = None,
    ) -> None:
        self.connection = connection
        self._headers = dict(headers)
        self._csrf_token = csrf_token
        self.ticket = ticket
        # Whatever the cluster echoes is cleaned of these too.
        connection.redactor.add(ticket.value.reveal() if ticket is not None else None, csrf_token)

    @classmethod
    def login(cls, connection: Connection, credentials: Credentials) -> PveSession:
        """A password is exchanged for a ticket (``POST /access/ticket``); an
        API token goes with every call as it is, so it makes no call here.

        A refused password login of an account in an OpenID Connect realm
        says so: PVE refuses it as it refuses a wrong password, though no
        password could work there."""
        if not isinstance(credentials, PasswordCredentials):
            token = f"PVEAPIToken={credentials.token_id}={credentials.secret.reveal()}"
            return cls(connection, {"Authorization": token})
        try:
            return cls._ticket_call(connection, credentials.username, credentials.password)
        except ProxmoxSecondFactorRequired:
            raise
        except ProxmoxAuthenticationFailed:
            username = credentials.username
            realm = username.rpartition("@")[2]
            if realm_type(connection, realm) != "openid":
                raise
            raise ProxmoxAuthenticationFailed(
                f"Proxmox refused the password of {username}: {realm} is an OpenID Connect "
                "realm, where a password login cannot work; register with an API token of "
                f"{username} ({username}!<name>) instead"
            ) from None

    @classmethod
    def with_ticket(cls, connection: Connection, ticket: Ticket) -> PveSession:
        """A session on a ticket obtained earlier: no call."""
        csrf = ticket.csrf_token.reveal() if ticket.csrf_token is not None else None
        return cls(connection, {"Cookie": f"PVEAuthCookie={ticket.value.reveal()}"}, csrf, ticket)

    def renew(self) -> PveSession:
        """A new ticket for this session's, which PVE takes in place of the
        password (``POST /access/ticket``) while it is valid."""
        if self.ticket is None:
            raise ValueError("only a ticket login can be renewed")
        return self._ticket_call(self.connection, self.ticket.username, self.ticket.value)

    @classmethod
    def _ticket_call(cls, connection: Connection, username: str, password: Secret) -> PveSession:
        form = {"username": username, "password": password.reveal()}
        data = connection.call("POST", TICKET_PATH, form=form)
        endpoint = connection.target.api_endpoint
        ticket = data.get("ticket") if isinstance(data, dict) else None
        if not isinstance(ticket, str) or not ticket.isascii() or not ticket.isprintable():
            raise ProxmoxBadResponse(f"{endpoint} answered the login without a usable ticket")
        if data.get("NeedTFA") or ticket.startswith("PVE:!tfa!"):
            raise ProxmoxSecondFactorRequired(
                f"Proxmox account {username} needs a second factor (TFA), which "
                "an unattended registry cannot supply; register it with an API token instead"
            )
        csrf = data.get("CSRFPreventionToken")
        csrf = csrf if isinstance(csrf, str) else None
        kept = Ticket(username, Secret(ticket), Secret(csrf) if csrf is not None else None)
        return cls(connection, {"Cookie": f"PVEAuthCookie={ticket}"}, csrf, kept)

    def on(self, connection: Connection) -> PveSession:
        """The same login on another connection to the same cluster."""
        return PveSession(connection, self._headers, self._csrf_token, self.ticket)

    def headers_for(self, method: str) -> dict[str, str]:
        headers = dict(self._headers)
        if method != "GET" and self._csrf_token:
            headers["CSRFPreventionToken"] = self._csrf_token
        return headers

    def call(self, method: str, path: str, *, form: Mapping[str, str] | None = None) -> Any:
        """One authenticated call; the envelope's ``data``."""
        return self.connection.call(method, path, headers=self.headers_for(method), form=form)

    def __repr__(self) -> str:
        return f"PveSession({self.connection!r}, <credentials redacted>)"

    # -- the calls ------------------------------------------------------------

    def version(self) -> str:
        """``GET /version``: the PVE version string (``8.2.4``, ``7.4-13``)."""
        data = self.call("GET", "/version")
        version = data.get("version") if isinstance(data, dict) else None
        if (
            not isinstance(version, str)
            or len(version) > _VERSION_MAX_LENGTH
            or not _VERSION_RE.fullmatch(version)
        ):
            raise ProxmoxBadResponse(
                f"{self.connection.target.api_endpoint} answered /version without a Proxmox VE "
                "version string: not a Proxmox VE API"
            )
        return version

    def cluster_status(self) -> list[ClusterStatusEntry]:
        """``GET /cluster/status`` (needs Sys.Audit on ``/``): the cluster
        entry, if clustered, and one entry per node with its address."""
        return [
            ClusterStatusEntry(
                type=str(item.get("type", "")),
                name=str(item.get("name", ""))[:_NAME_MAX_LENGTH],
                online=bool(item.get("online")) if "online" in item else None,
                quorate=bool(item.get("quorate")) if "quorate" in item else None,
                ip=_text(item.get("ip"), _ADDRESS_MAX_LENGTH),
                local=bool(item.get("local")),
            )
            for item in self._list("/cluster/status")
        ]

    def nodes(self) -> list[NodeEntry]:
        """``GET /nodes``: the nodes this account may see, with the usage
        figures PVE gives (none for offline nodes, nor without Sys.Audit)."""
        return [
            NodeEntry(
                node=str(item.get("node", ""))[:_NAME_MAX_LENGTH],
                status=str(item.get("status", "unknown"))[:16],
                cpu=_number(item.get("cpu")),
                maxcpu=_whole(item.get("maxcpu")),
                mem=_whole(item.get("mem")),
                maxmem=_whole(item.get("maxmem")),
                uptime=_whole(item.get("uptime")),
                ssl_fingerprint=_text(item.get("ssl_fingerprint"), _FINGERPRINT_MAX_LENGTH),
            )
            for item in self._list("/nodes")
        ]

    def create_token(self, userid: str, name: str, *, comment: str) -> TokenCredentials:
        """``POST /access/users/{userid}/token/{name}`` with ``privsep=1``: a
        privilege-separated token of ``userid``, which may do only what its
        own ACL entries grant (and its user may). PVE shows the secret
        (``value``) this once. Allowed to the user itself, or to whoever has
        ``User.Modify`` on the user's groups."""
        path = _token_path(userid, name)
        data = self.call("POST", path, form={"privsep": "1", "comment": comment})
        token_id = f"{userid}!{name}"
        value = data.get("value") if isinstance(data, dict) else None
        if not isinstance(value, str) or not value or data.get("full-tokenid") != token_id:
            raise ProxmoxBadResponse(
                f"{self.connection.target.api_endpoint} answered {path} without the new "
                "token's id and value"
            )
        return TokenCredentials(token_id, Secret(value), created_by_registry=True)

    def grant_token_role(self, token_id: str, role: str, path: str = "/") -> None:
        """``PUT /access/acl``: ``role`` for the API token ``token_id`` on
        ``path`` and below (``propagate=1``). Needs ``Permissions.Modify`` on
        ``path``; PVE answers ``403 Permission check failed (/,
        Permissions.Modify)`` otherwise."""
        self.call(
            "PUT",
            "/access/acl",
            form={"path": path, "roles": role, "tokens": token_id, "propagate": "1"},
        )

    def delete_token(self, token_id: str) -> None:
        """``DELETE /access/users/{userid}/token/{name}``. The same rule as
        creating one: a token is never its own user, so a privilege-separated
        token cannot delete itself."""
        userid, name = token_id.split("!", 1)
        self.call("DELETE", _token_path(userid, name))

    def _list(self, path: str) -> list[dict[str, Any]]:
        data = self.call("GET", path)
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ProxmoxBadResponse(
                f"{self.connection.target.api_endpoint} answered {path} with something "
                "other than a list"
            )
        return data


def _text(value: Any, max_length: int) -> str | None:
    """A short printable string, or None for anything else."""
    if isinstance(value, str) and 0 < len(value) <= max_length and value.isprintable():
        return value
    return None


def _number(value: Any) -> float | None:
    """A finite number (JSON's ``NaN`` would not survive storage), or None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _whole(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _token_path(userid: str, name: str) -> str:
    # PVE unescapes the path before routing (pve-http-server, AnyEvent.pm):
    # a user id may hold characters a URL path cannot, like '#' or '?'.
    return f"/access/users/{quote(userid, safe='@')}/token/{quote(name, safe='')}"
