"""Access control as one PVE cluster holds it: realms, users, API tokens,
roles, ACLs, tickets and CSRF tokens, with PVE's rules and error texts.

Sources (all proxmox/pve-access-control unless said otherwise):
- roles and privileges: src/PVE/AccessControl.pm, ``$privgroups`` and
  ``create_roles`` (the built-in roles are derived the same way here);
- ACL evaluation: src/PVE/AccessControl.pm ``roles`` (the deepest ACL entry
  wins, token entries before user entries, ``propagate`` carries a role
  down) and src/PVE/RPCEnvironment.pm ``permissions`` (a privilege-separated
  token gets the intersection of its own and its user's privileges; a
  token without privilege separation gets its user's);
- tickets: pve-common src/PVE/Ticket.pm ``assemble_rsa_ticket``
  (``PVE:<data>:<8 hex digits of time>::<base64 signature>``, ``:`` in the
  data percent-encoded) and src/PVE/AccessControl.pm ``verify_ticket``
  (valid from 5 minutes in the future to ``$ticket_lifetime``, 2 hours);
- CSRF tokens: pve-common src/PVE/Ticket.pm
  ``assemble_csrf_prevention_token`` (``<8 hex>:<base64 HMAC-SHA256 of
  "<time>:<user>">``).

Tickets are signed with a keyed SHAKE-256 digest of PVE's RSA-2048
signature length (256 bytes) instead of RSA: the same shape, made in
microseconds, and checked without remembering each ticket, so a ticket
from one node of a simulated cluster opens the others, as in PVE.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import struct
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

TICKET_LIFETIME = 2 * 3600  # $ticket_lifetime in AccessControl.pm
AUTH_GRACE_PERIOD = 5 * 60  # $auth_graceperiod: tickets from a clock slightly ahead
_SIGNATURE_BYTES = 256  # an RSA-2048 signature
_ISSUED_KEPT = 4096  # how many issued tickets secret-leak checks can look for

# $PVE::Auth::Plugin::realm_regex and user_regex (src/PVE/Auth/Plugin.pm)
REALM_RE = r"[A-Za-z][A-Za-z0-9\.\-_]+"
USER_RE = r"[^\s:/]+"
TOKEN_SUBID_RE = REALM_RE  # $token_subid_regex
_USERID = re.compile(rf"^({USER_RE})@({REALM_RE})$")
_TOKENID = re.compile(rf"^(({USER_RE})@({REALM_RE}))!({TOKEN_SUBID_RE})$")
_ROLEID = re.compile(r"^[A-Za-z0-9\.\-_]+$")

# -- roles -----------------------------------------------------------------------------

# $privgroups in AccessControl.pm: category -> (root, admin, user, audit) privileges
_PRIVGROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "VM": (
        (),
        (
            "VM.Config.Disk",
            "VM.Config.CPU",
            "VM.Config.Memory",
            "VM.Config.Network",
            "VM.Config.HWType",
            "VM.Config.Options",
            "VM.Allocate",
            "VM.Clone",
            "VM.GuestAgent.Unrestricted",
            "VM.Migrate",
            "VM.Replicate",
            "VM.Snapshot",
            "VM.Snapshot.Rollback",
        ),
        (
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.Backup",
            "VM.GuestAgent.FileRead",
            "VM.GuestAgent.FileSystemMgmt",
            "VM.GuestAgent.FileWrite",
            "VM.PowerMgmt",
        ),
        ("VM.Audit", "VM.GuestAgent.Audit"),
    ),
    "Sys": (
        ("Sys.PowerMgmt", "Sys.Modify", "Sys.Incoming", "Sys.AccessNetwork"),
        ("Sys.Console", "Sys.Syslog"),
        (),
        ("Sys.Audit",),
    ),
    "Datastore": (
        (),
        ("Datastore.Allocate", "Datastore.AllocateTemplate"),
        ("Datastore.AllocateSpace",),
        ("Datastore.Audit",),
    ),
    "SDN": ((), ("SDN.Allocate", "SDN.Audit"), ("SDN.Use",), ("SDN.Audit",)),
    "User": (("Realm.Allocate",), ("User.Modify", "Group.Allocate", "Realm.AllocateUser"), (), ()),
    "Pool": ((), ("Pool.Allocate",), ("Pool.Audit",), ("Pool.Audit",)),
    "Mapping": ((), ("Mapping.Modify",), ("Mapping.Use",), ("Mapping.Audit",)),
}


def _build_roles() -> dict[str, frozenset[str]]:
    """The built-in roles, derived as ``create_roles`` does."""
    every = {"Permissions.Modify"}
    roles: dict[str, set[str]] = {"NoAccess": set(), "PVEAdmin": set(), "PVEAuditor": set()}
    for category, (root, admin, user, audit) in _PRIVGROUPS.items():
        every.update(root, admin, user, audit)
        roles.setdefault(f"PVE{category}Admin", set()).update(admin, user, audit)
        roles["PVEAdmin"].update(admin, user, audit)
        if user:
            roles.setdefault(f"PVE{category}User", set()).update(user, audit)
        roles["PVEAuditor"].update(audit)
    roles["PVEAdmin"].discard("Mapping.Modify")
    roles["PVETemplateUser"] = {"VM.Clone", "VM.Audit"}
    roles["Administrator"] = every
    return {name: frozenset(privs) for name, privs in roles.items()}


ROLES: dict[str, frozenset[str]] = _build_roles()
ALL_PRIVILEGES: frozenset[str] = ROLES["Administrator"]


class AccessError(Exception):
    """A refusal worded as PVE words it (the text PVE dies with)."""


# -- realms, users, tokens ---------------------------------------------------------------


@dataclass(frozen=True)
class Realm:
    realm: str
    type: str
    comment: str | None = None

    @property
    def takes_passwords(self) -> bool:
        # src/PVE/Auth/OpenId.pm: "OpenID realm does not allow password verification."
        return self.type != "openid"

    def entry(self) -> dict[str, Any]:
        """As ``GET /access/domains`` lists it (src/PVE/API2/Domains.pm)."""
        data: dict[str, Any] = {"realm": self.realm, "type": self.type}
        if self.comment:
            data["comment"] = self.comment
        return data


# The two realms every PVE has (src/PVE/Auth/Plugin.pm, parse_config), and an
# OpenID Connect realm for accounts that cannot log in with a password.
DEFAULT_REALMS = (
    Realm("pam", "pam", "Linux PAM standard authentication"),
    Realm("pve", "pve", "Proxmox VE authentication server"),
    Realm("oidc", "openid", "OpenID Connect (simulated identity provider)"),
)


@dataclass
class Token:
    secret: str
    privsep: Any = 1  # kept as sent (1, "0", true, ...), as user.cfg keeps it
    expire: Any = None
    comment: str | None = None

    def info(self) -> dict[str, Any]:
        """The token's ``info`` as PVE returns it: only what is set."""
        data: dict[str, Any] = {"privsep": self.privsep}
        if self.expire is not None:
            data["expire"] = self.expire
        if self.comment:
            data["comment"] = self.comment
        return data

    @property
    def separated(self) -> bool:
        return _truthy(self.privsep)


@dataclass
class User:
    userid: str
    password: str | None  # None: this user cannot log in with a password (OpenID)
    enabled: bool = True
    tokens: dict[str, Token] = field(default_factory=dict)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value not in ("", "0")
    return bool(value)


def split_userid(userid: str) -> tuple[str, str] | None:
    match = _USERID.match(userid)
    return (match.group(1), match.group(2)) if match else None


def split_tokenid(tokenid: str) -> tuple[str, str] | None:
    match = _TOKENID.match(tokenid)
    return (match.group(1), match.group(4)) if match else None


def verify_username(username: str) -> str:
    """src/PVE/Auth/Plugin.pm ``verify_username``, with its texts."""
    if len(username) < 3:
        raise AccessError(f"user name '{username}' is too short")
    if len(username) > 64:
        raise AccessError(f"user name '{username}' is too long ({len(username)} > 64)")
    if not _USERID.match(username):
        raise AccessError(f"value '{username}' does not look like a valid user name")
    return username


def is_roleid(role: str) -> bool:
    return bool(_ROLEID.match(role))


def normalize_path(path: str | None) -> str | None:
    """src/PVE/AccessControl.pm ``normalize_path``."""
    if not path:
        return None
    path = re.sub("/+", "/", path).rstrip("/") or "/"
    if not path.startswith("/"):
        path = "/" + path
    if not re.fullmatch(r"[A-Za-z0-9\.\-_/]+", path):
        return None
    return path


_ACL_PATHS = re.compile(
    r"^(/|/access|/access/groups(/[\w.\-]+)?|/access/realm(/[\w.\-]+)?|/nodes(/[\w.\-]+)?"
    r"|/pool(/[A-Za-z0-9.\-_]+(/[A-Za-z0-9.\-_]+){0,2})?|/sdn(/.+)?"
    r"|/storage(/[\w.\-]+)?|/vms(/[1-9][0-9]{2,})?|/mapping(/[\w.\-]+){0,2})$"
)


def check_path(path: str) -> bool:
    """Whether PVE accepts ``path`` as an ACL path (``check_path``, abridged
    for /sdn: any sub-path)."""
    return bool(_ACL_PATHS.match(path))


# -- the cluster's access configuration ---------------------------------------------------

RoleGrant = dict[str, bool]  # role -> propagate
AclKey = tuple[str, str]  # ("user" | "token", ugid)


class AccessControl:
    """user.cfg, domains.cfg and the auth keys of one simulated cluster.

    Thread-safe: one lock guards the configuration; reads copy what they
    need.
    """

    def __init__(self, *, ticket_lifetime: float = TICKET_LIFETIME) -> None:
        self._lock = threading.RLock()
        self.realms: dict[str, Realm] = {realm.realm: realm for realm in DEFAULT_REALMS}
        self.users: dict[str, User] = {}
        self.acl: dict[str, dict[AclKey, RoleGrant]] = {}
        # root@pam holds every privilege without any ACL entry (RPCEnvironment.pm
        # ``permissions``); the simulator keeps root@pam's grants here, out of
        # GET /access/acl, so that they can still be narrowed for a scenario.
        self.implicit: dict[str, dict[str, RoleGrant]] = {}
        self.ticket_lifetime = ticket_lifetime
        self._auth_key = secrets.token_bytes(32)  # /etc/pve/priv/authkey.key
        self._csrf_secret = secrets.token_bytes(32)  # /etc/pve/pve-www.key
        self._issued: deque[str] = deque(maxlen=_ISSUED_KEPT)

    # -- configuration ---------------------------------------------------------------------

    def add_user(self, userid: str, password: str | None) -> User:
        with self._lock:
            user = User(verify_username(userid), password)
            self.users[userid] = user
            return user

    def set_roles(self, authid: str, grants: Mapping[str, Iterable[str]]) -> None:
        """Replace every ACL entry of ``authid`` (a user or token id) with
        ``grants`` (path -> roles, propagated)."""
        kind = "token" if "!" in authid else "user"
        with self._lock:
            for entries in self.acl.values():
                entries.pop((kind, authid), None)
            self.implicit.pop(authid, None)
            for path, roles in grants.items():
                normal = normalize_path(path)
                if normal is None:
                    raise ValueError(f"invalid ACL path {path!r}")
                names = list(roles)
                unknown = [role for role in names if role not in ROLES]
                if unknown:
                    raise ValueError(
                        f"unknown role {unknown[0]!r}; choose from {', '.join(sorted(ROLES))}"
                    )
                if names and authid == "root@pam":
                    self.implicit.setdefault(authid, {})[normal] = dict.fromkeys(names, True)
                elif names:
                    self.acl.setdefault(normal, {})[(kind, authid)] = dict.fromkeys(names, True)

    def find_user(self, userid: str) -> User | None:
        with self._lock:
            return self.users.get(userid)

    def token(self, tokenid: str) -> Token | None:
        parts = split_tokenid(tokenid)
        if parts is None:
            return None
        user = self.find_user(parts[0])
        return user.tokens.get(parts[1]) if user else None

    def token_ids(self) -> list[str]:
        with self._lock:
            return sorted(f"{u.userid}!{name}" for u in self.users.values() for name in u.tokens)

    # -- privileges ----------------------------------------------------------------------------

    def _roles(self, authid: str, path: str) -> dict[str, bool]:
        """``roles`` in AccessControl.pm: walk from / to ``path``; at each
        level a token's own entry, else the user's, replaces what was
        inherited; only propagated roles pass to deeper levels."""
        kind = "token" if "!" in authid else "user"
        levels = (
            ["/"]
            + [
                "/" + "/".join(path.strip("/").split("/")[: n + 1])
                for n in range(len(path.strip("/").split("/")))
            ]
            if path != "/"
            else ["/"]
        )
        roles: dict[str, bool] = {}
        for index, level in enumerate(levels):
            final = index == len(levels) - 1
            grants = self.acl.get(level, {}).get((kind, authid)) or self.implicit.get(
                authid, {}
            ).get(level)
            if grants:
                applied = {role: prop for role, prop in grants.items() if final or prop}
                if applied:
                    roles = applied
        if "NoAccess" in roles:
            return {"NoAccess": roles["NoAccess"]}
        return roles

    def _own_privileges(self, authid: str, path: str) -> dict[str, bool]:
        privileges: dict[str, bool] = {}
        for role, propagate in self._roles(authid, path).items():
            for privilege in ROLES.get(role, ()):
                privileges[privilege] = privileges.get(privilege, False) or propagate
        return privileges

    def privileges(self, authid: str, path: str) -> dict[str, bool]:
        """``permissions`` in RPCEnvironment.pm: privilege -> propagated."""
        with self._lock:
            parts = split_tokenid(authid)
            if parts is None:
                user = self.users.get(authid)
                return self._own_privileges(authid, path) if user else {}
            user = self.users.get(parts[0])
            token = user.tokens.get(parts[1]) if user else None
            if user is None or token is None:
                return {}
            user_privileges = self._own_privileges(parts[0], path)
            if not token.separated:
                return user_privileges
            own = self._own_privileges(authid, path)
            return {
                privilege: own[privilege] and user_privileges[privilege]
                for privilege in own
                if privilege in user_privileges
            }

    def check(self, authid: str, path: str, privileges: Iterable[str]) -> bool:
        held = self.privileges(authid, path)
        return all(privilege in held for privilege in privileges)

    def check_any(self, authid: str, path: str, privileges: Iterable[str]) -> bool:
        held = self.privileges(authid, path)
        return any(privilege in held for privilege in privileges)

    def capabilities(self, authid: str) -> dict[str, dict[str, int]]:
        """``compute_api_permission``: the ``cap`` of a login answer."""
        patterns = {
            "vms": r"VM\.|Permissions\.Modify",
            "access": r"(User|Group)\.|Permissions\.Modify",
            "storage": r"Datastore\.|Permissions\.Modify",
            "nodes": r"Sys\.|Permissions\.Modify",
            "sdn": r"SDN\.|Permissions\.Modify",
            "dc": r"Sys\.Audit|Sys\.Modify|SDN\.",
            "mapping": r"Mapping\.|Permissions.Modify",
        }
        result: dict[str, dict[str, int]] = {key: {} for key in patterns}
        with self._lock:
            paths = ["/", "/nodes", "/access/groups", "/vms", "/storage", "/sdn", "/mapping"]
            paths += [path for path in sorted(self.acl) if path not in paths]
        for path in paths:
            top = re.match(r"^/(\w+)", path)
            toplevel = top.group(1) if top else "dc"
            for privilege in self.privileges(authid, path):
                if toplevel == "pool":
                    for prefix, key in (("VM.", "vms"), ("Datastore.", "storage")):
                        if privilege.startswith(prefix):
                            result[key][privilege] = 1
                    if privilege == "Permissions.Modify":
                        result["storage"][privilege] = result["vms"][privilege] = 1
                elif toplevel in patterns and re.match(f"^({patterns[toplevel]})", privilege):
                    result[toplevel][privilege] = 1
        return result

    # -- credentials -----------------------------------------------------------------------------

    def check_user_enabled(self, userid: str) -> User:
        verify_username(userid)
        with self._lock:
            user = self.users.get(userid)
        if user is None:
            raise AccessError(f"no such user ('{userid}')")
        if not user.enabled:
            raise AccessError(f"user '{userid}' is disabled")
        return user

    def authenticate_password(self, userid: str, password: str) -> User:
        """``authenticate_user``: raises AccessError with PVE's detail (which
        the login answer never shows)."""
        user = self.check_user_enabled(userid)
        realm = self.realms.get(userid.rpartition("@")[2])
        if realm is None:
            raise AccessError(f"auth domain '{userid.rpartition('@')[2]}' does not exist")
        if not realm.takes_passwords or user.password is None:
            raise AccessError("OpenID realm does not allow password verification.")
        if not hmac.compare_digest(password.encode(), user.password.encode()):
            raise AccessError("authentication failure")
        return user

    def verify_token(self, value: str) -> str:
        """``verify_token``: the token id, or AccessError with PVE's text."""
        if not value:
            raise AccessError("no API token specified")
        tokenid, separator, secret = value.rpartition("=")
        if not separator:
            raise AccessError("no tokenid specified")
        parts = split_tokenid(tokenid)
        if parts is None:
            raise AccessError(
                f"'{tokenid}' is not a valid token ID - not able to split into user and token parts"
            )
        userid, name = parts
        user = self.check_user_enabled(userid)
        with self._lock:
            token = user.tokens.get(name)
        if token is None:
            raise AccessError(f"no such token '{name}' for user '{userid}'")
        if token.expire and _truthy(token.expire) and int(token.expire) < time.time():
            raise AccessError(f"token '{name}' access expired")
        if not hmac.compare_digest(secret.encode(), token.secret.encode()):
            raise AccessError("invalid token value!")
        return tokenid

    def create_token(
        self, userid: str, name: str, *, privsep: Any, expire: Any, comment: Any
    ) -> tuple[Token, str]:
        with self._lock:
            user = self.users[userid]
            token = Token(str(uuid.uuid4()))  # PVE::TokenConfig::generate_token: a UUID
            token.privsep = 1 if privsep is None else privsep
            token.expire = expire
            token.comment = comment if comment else None
            user.tokens[name] = token
            return token, f"{userid}!{name}"

    def delete_token(self, userid: str, name: str) -> None:
        with self._lock:
            self.users[userid].tokens.pop(name, None)
            tokenid = f"{userid}!{name}"
            for entries in self.acl.values():
                entries.pop(("token", tokenid), None)

    # -- tickets -----------------------------------------------------------------------------------

    def _sign(self, plain: str) -> str:
        digest = hashlib.shake_256(self._auth_key + plain.encode()).digest(_SIGNATURE_BYTES)
        return base64.b64encode(digest).decode()

    def assemble_ticket(self, data: str, aad: str | None = None, now: float | None = None) -> str:
        timestamp = f"{int(time.time() if now is None else now):08X}"
        plain = _escape_colons(data, timestamp)
        full = f"{plain}:{aad}" if aad is not None else plain
        ticket = f"{plain}::{self._sign(full)}"
        self._issued.append(ticket)
        return ticket

    def verify_ticket(self, ticket: str, aad: str | None = None) -> tuple[str, float]:
        """``verify_rsa_ticket``: (data, age), or AccessError
        ``permission denied - invalid PVE ticket``."""
        match = re.fullmatch(r"(PVE:\S+)::([^:\s]+)", ticket or "")
        if match is not None:
            plain, signature = match.groups()
            full = f"{plain}:{aad}" if aad is not None else plain
            inner = re.fullmatch(r"PVE:(?:(\S+):)?([A-Z0-9]{8})", plain)
            if inner is not None and hmac.compare_digest(signature, self._sign(full)):
                age = time.time() - int(inner.group(2), 16)
                if -AUTH_GRACE_PERIOD < age < self.ticket_lifetime:
                    return unquote(inner.group(1) or ""), age
        raise AccessError("permission denied - invalid PVE ticket")

    def assemble_csrf_token(self, userid: str) -> str:
        timestamp = f"{int(time.time()):08X}"
        self._issued.append(self._csrf_digest(timestamp, userid))
        return f"{timestamp}:{self._csrf_digest(timestamp, userid)}"

    def _csrf_digest(self, timestamp: str, userid: str) -> str:
        digest = hmac.new(self._csrf_secret, f"{timestamp}:{userid}".encode(), "sha256")
        return base64.b64encode(digest.digest()).decode().rstrip("=")

    def verify_csrf_token(self, userid: str, token: str | None) -> None:
        match = re.fullmatch(r"([A-Z0-9]{8}):(\S+)", token or "")
        if match is not None:
            timestamp, signature = match.groups()
            age = time.time() - int(timestamp, 16)
            expected = self._csrf_digest(timestamp, userid)
            if hmac.compare_digest(signature, expected) and (
                -AUTH_GRACE_PERIOD < age < self.ticket_lifetime
            ):
                return
        raise AccessError("Permission denied - invalid csrf token")

    @property
    def issued(self) -> list[str]:
        """The latest tickets and CSRF signatures handed out (for leak checks)."""
        return list(self._issued)


def _escape_colons(data: str, timestamp: str) -> str:
    # uri_escape($data, ':') escapes only the colon.
    return f"PVE:{data.replace(':', '%3A')}:{timestamp}"


# -- second factor (TOTP, RFC 6238, as PVE's TOTP entries: SHA-1, 6 digits, 30 s) ----------------


def totp(secret_base32: str, at: float | None = None, step: int = 30) -> str:
    key = base64.b32decode(secret_base32.upper() + "=" * (-len(secret_base32) % 8))
    counter = int((time.time() if at is None else at) // step)
    digest = hmac.new(key, struct.pack(">Q", counter), "sha1").digest()
    offset = digest[-1] & 0x0F
    code = (int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def totp_matches(secret_base32: str, code: str) -> bool:
    now = time.time()
    return any(
        hmac.compare_digest(totp(secret_base32, now + drift * 30), code) for drift in (-1, 0, 1)
    )
