"""The ``/api2/json`` calls the simulator answers, as pveproxy answers them.

The request path follows PVE's own: pve-http-server's
``authenticate_and_handle_request`` takes the ticket from the
``PVEAuthCookie`` cookie, else from an ``Authorization: PVEAuthCookie=…``
header, and only without a ticket an ``Authorization: PVEAPIToken=…``
(src/PVE/APIServer/AnyEvent.pm); pve-manager's ``auth_handler`` lets
``GET /access/domains`` and ``GET``/``POST /access/ticket`` through
unauthenticated and wants the CSRF token on every other non-GET call made
with a ticket (PVE/HTTPServer.pm); its ``rest_handler`` then refuses API
tokens on calls marked ``allowtoken => 0`` (``POST /access/ticket``),
checks the call's permissions, and only then validates the parameters
(pve-common src/PVE/RESTHandler.pm, src/PVE/JSONSchema.pm).

A failure of ``auth_handler`` becomes a 401 with an empty body, three
seconds late; every other error goes through the JSON formatter:
``{"data": null}``, ``errors`` for parameter errors, and from
libpve-http-server-perl 5.2.0 the text as ``message`` as well.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from pve_simulator.access import (
    REALM_RE,
    TOKEN_SUBID_RE,
    AccessControl,
    AccessError,
    check_path,
    is_roleid,
    normalize_path,
    split_tokenid,
    split_userid,
    totp_matches,
    verify_username,
)

if TYPE_CHECKING:
    from pve_simulator.server import PveSimulator, SimulatedNode

# The calls pve-manager's auth_handler lets through without credentials.
_OPEN_CALLS = {("GET", "/access/domains"), ("GET", "/access/ticket"), ("POST", "/access/ticket")}
_TFA_CHALLENGE = '{"totp":true}'  # proxmox-tfa's TfaChallenge for an account with one TOTP


class ApiError(Exception):
    """An error as rest_handler reports it: status, message, per-parameter errors."""

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


class AuthRefused(Exception):
    """auth_handler died: a 401 with this reason and an empty body."""


def perm_error(what: str | None = None) -> ApiError:
    """pve-common ``raise_perm_exc``."""
    return ApiError(403, "Permission check failed" + (f" ({what})" if what else "") + "\n")


def param_error(errors: dict[str, str]) -> ApiError:
    """pve-common ``raise_param_exc``."""
    return ApiError(400, "Parameter verification failed.\n", errors)


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str  # below /api2/json, unquoted
    query: str
    headers: Mapping[str, str]  # case-insensitive (an email.message.Message)
    body: bytes
    node: SimulatedNode
    started: float


@dataclass
class Reply:
    """What to send. ``body`` None: render ``data`` through the JSON formatter."""

    status: int
    message: str = "OK"
    data: Any = None
    errors: dict[str, str] | None = None
    body: bytes | None = None
    delay: float = 0.0
    auth: str = "none"
    extra_headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        # AnyEvent.pm ``response``: the first line of the message.
        return (self.message.split("\n", 1)[0] or "").strip("\r")


@dataclass(frozen=True)
class Auth:
    authid: str  # user id, or token id for API tokens
    kind: str  # "ticket", "token" or "none"


# -- parameters -----------------------------------------------------------------------------------


def decode_urlencoded(data: str) -> dict[str, Any]:
    """AnyEvent.pm ``decode_urlencoded``: ``&`` or ``;`` separated, a
    repeated key becomes a list."""
    result: dict[str, Any] = {}
    for pair in re.split(r"[&;]", data):
        if not pair:
            continue
        key, separator, value = pair.partition("=")
        key = unquote(key.replace("+", " "))
        if not separator:
            result[key] = None
            continue
        decoded = unquote(value.replace("+", " "))
        if key in result and result[key] is not None:
            old = result[key]
            result[key] = [*old, decoded] if isinstance(old, list) else [old, decoded]
        else:
            result[key] = decoded
    return result


def extract_params(request: ApiRequest) -> dict[str, Any]:
    """AnyEvent.pm ``extract_params``: the body (JSON or form) for PUT and
    POST, then the query string on top."""
    params: dict[str, Any] = {}
    if request.method in ("PUT", "POST") and request.body:
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type == "application/json":
            try:
                decoded = json.loads(request.body)
            except ValueError as error:
                raise ApiError(500, f"malformed JSON string: {error}\n") from None
            if not isinstance(decoded, dict):
                raise ApiError(500, "JSON body is not an object\n")
            params = decoded
        else:
            params = decode_urlencoded(request.body.decode("utf-8", "replace"))
    params.update(decode_urlencoded(request.query))
    params.pop("_dc", None)  # "remove disable cache parameter"
    return params


@dataclass(frozen=True)
class Param:
    type: str = "string"  # string, boolean, integer
    optional: bool = False
    pattern: str | None = None
    max_length: int | None = None
    minimum: int | None = None
    format: Callable[[str], None] | None = None


def _userid_format(value: str) -> None:
    try:
        verify_username(value)
    except AccessError as error:
        raise ValueError(str(error)) from None


def _list_format(check: Callable[[str], None]) -> Callable[[str], None]:
    def checked(value: str) -> None:
        for item in re.split(r"[,;\s]+", value.strip()):
            if item:
                check(item)

    return checked


def _tokenid_format(value: str) -> None:
    if split_tokenid(value) is None:
        raise ValueError(f"value '{value}' does not look like a valid token ID")


def _roleid_format(value: str) -> None:
    if not is_roleid(value):
        raise ValueError(f"role name '{value}' contains invalid characters")


def _realm_format(value: str) -> None:
    if not re.fullmatch(REALM_RE, value):
        raise ValueError("value does not look like a valid realm")


def validate(params: dict[str, Any], schema: Mapping[str, Param]) -> None:
    """pve-common JSONSchema ``validate`` for flat parameter objects, with
    its texts; booleans are ``1``/``0`` (or JSON booleans) and nothing else."""
    errors: dict[str, str] = {}
    for name in sorted(schema):
        spec, value = schema[name], params.get(name)
        if value is None:
            if not spec.optional:
                errors[name] = "property is missing and it is not optional"
            continue
        problem = _check_value(spec, value)
        if problem:
            errors[name] = problem
    for name in params:
        if name not in schema:
            errors[name] = (
                "property is not defined in schema and the schema does not allow additional "
                "properties"
            )
    if errors:
        raise param_error(errors)


def _check_value(spec: Param, value: Any) -> str | None:
    if isinstance(value, (list, dict)):
        kind = "ARRAY" if isinstance(value, list) else "HASH"
        return f"type check ('{spec.type}') failed - got {kind}"
    if spec.type == "boolean":
        if isinstance(value, bool) or value in ("1", "0", 1, 0):
            return None
        return f"type check ('boolean') failed - got '{value}'"
    if spec.type == "integer":
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", str(value)):
            return f"type check ('integer') failed - got '{value}'"
        if spec.minimum is not None and int(value) < spec.minimum:
            return f"value must have a minimum value of {spec.minimum}"
        return None
    text = str(value)
    if spec.format is not None:
        try:
            spec.format(text)
        except ValueError as error:
            return f"invalid format - {error}\n"
    if spec.pattern is not None and not re.fullmatch(spec.pattern, text):
        return "value does not match the regex pattern"
    if spec.max_length is not None and len(text) > spec.max_length:
        return f"value may only be {spec.max_length} characters long"
    return None


# Standard options: pve-access-control src/PVE/API2/User.pm, ACL.pm, AccessControl.pm.
_USERID = Param(format=_userid_format, max_length=64)
_TOKEN_SUBID = Param(pattern=TOKEN_SUBID_RE)
_TICKET_SCHEMA = {
    "username": Param(max_length=64),
    "realm": Param(optional=True, format=_realm_format, max_length=32),
    "password": Param(),
    "otp": Param(optional=True),
    "path": Param(optional=True, max_length=64),
    "privs": Param(optional=True, max_length=64),
    "new-format": Param(type="boolean", optional=True),
    "tfa-challenge": Param(optional=True),
}
_TOKEN_SCHEMA = {"userid": _USERID, "tokenid": _TOKEN_SUBID}
_TOKEN_CREATE_SCHEMA = {
    **_TOKEN_SCHEMA,
    "expire": Param(type="integer", optional=True, minimum=0),
    "privsep": Param(type="boolean", optional=True),
    "comment": Param(optional=True),
}
_ACL_SCHEMA = {
    "propagate": Param(type="boolean", optional=True),
    "path": Param(),
    "users": Param(optional=True, format=_list_format(_userid_format)),
    "groups": Param(optional=True, format=_list_format(lambda g: None)),
    "tokens": Param(optional=True, format=_list_format(_tokenid_format)),
    "roles": Param(format=_list_format(_roleid_format)),
    "delete": Param(type="boolean", optional=True),
}


def _split_list(value: Any) -> list[str]:
    return [item for item in re.split(r"[,;\s]+", str(value or "").strip()) if item]


def _truthy(value: Any) -> bool:
    return value not in (None, "", "0", 0, False)


# -- the API -----------------------------------------------------------------------------------


class PveApi:
    """Answers one cluster's API calls; the cluster (a ``PveSimulator``)
    holds the state, this holds PVE's rules."""

    def __init__(self, cluster: PveSimulator) -> None:
        self.cluster = cluster

    @property
    def access(self) -> AccessControl:
        return self.cluster.access

    def answer(self, request: ApiRequest) -> Reply:
        cluster = self.cluster
        try:
            auth = self._authenticate(request)
        except AuthRefused as refused:
            message = str(refused)
            if cluster.profile.unified_auth_failure and message not in (
                "No ticket",
                "Permission denied - invalid csrf token",
            ):
                message = "Authentication failed!"
            # An empty body, answered three seconds late (AnyEvent.pm,
            # authenticate_and_handle_request: "always delay unauthorized calls").
            return Reply(401, message, body=b"", delay=cluster.auth_failure_delay)
        try:
            if cluster.scenario.failure is not None and auth.kind != "none":
                from pve_simulator.scenarios import Failure

                if cluster.scenario.failure is Failure.SERVER_ERROR:
                    raise ApiError(500, "Internal Server Error")
            reply = self._dispatch(request, auth)
        except ApiError as error:
            reply = Reply(error.status, error.message, errors=error.errors)
            if error.status == 401:  # handle_api2_request: 3 s from the request's start
                elapsed = time.monotonic() - request.started
                reply.delay = max(0.0, cluster.auth_failure_delay - elapsed)
        reply.auth = auth.kind
        return reply

    # -- authentication (PVE/HTTPServer.pm auth_handler) ----------------------------------------

    def _authenticate(self, request: ApiRequest) -> Auth:
        cookie = request.headers.get("Cookie") or ""
        authorization = request.headers.get("Authorization") or ""
        ticket = _auth_value(cookie, "PVEAuthCookie") or _auth_value(authorization, "PVEAuthCookie")
        api_token = None if ticket else _auth_value(authorization, "PVEAPIToken")
        if (request.method, request.path) in _OPEN_CALLS:
            return Auth("", "token" if api_token else "none")
        if api_token:
            try:
                return Auth(self.access.verify_token(api_token), "token")
            except AccessError as error:
                raise AuthRefused(str(error)) from None
        if not ticket:
            raise AuthRefused("No ticket")
        try:
            data, _age = self.access.verify_ticket(ticket)
            if data.startswith("!tfa!"):
                # verify_ticket answers a half-authenticated ticket with a
                # hash, which check_user_enabled then fails to read as a name.
                raise AccessError(
                    "value 'HASH(0x5581c3a2e6d8)' does not look like a valid user name"
                )
            self.access.check_user_enabled(data)
        except AccessError as error:
            raise AuthRefused(str(error)) from None
        if request.method != "GET":
            try:
                self.access.verify_csrf_token(data, request.headers.get("CSRFPreventionToken"))
            except AccessError as error:
                raise AuthRefused(str(error)) from None
        return Auth(data, "ticket")

    # -- routing (rest_handler) ---------------------------------------------------------------

    def _dispatch(self, request: ApiRequest, auth: Auth) -> Reply:
        method, path = request.method, request.path
        params = extract_params(request)
        route = self._route(method, path)
        if route is None:
            raise ApiError(501, f"Method '{method} {path}' not implemented")
        handler, uri_params, allowtoken = route
        for name, value in params.items():
            if name in uri_params and uri_params[name] != value:
                raise param_error(
                    {name: "duplicate parameter (already defined in URI) with conflicting values!"}
                )
        params.update(uri_params)
        if auth.kind == "token" and not allowtoken:
            raise perm_error(f"URI '{path}' not available with API token, need proper ticket.\n")
        if method == "GET" and auth.kind != "none" and not path.startswith("/access/"):
            self.cluster._count("reads")
        return Reply(200, "OK", handler(auth, params, request))

    def _route(
        self, method: str, path: str
    ) -> tuple[Callable[[Auth, dict[str, Any], ApiRequest], Any], dict[str, str], bool] | None:
        fixed: dict[tuple[str, str], Callable[[Auth, dict[str, Any], ApiRequest], Any]] = {
            ("GET", "/version"): self._version,
            ("GET", "/cluster/status"): self._cluster_status,
            ("GET", "/nodes"): self._nodes,
            ("GET", "/access/domains"): self._domains,
            ("GET", "/access/ticket"): lambda auth, params, request: None,
            ("POST", "/access/ticket"): self._create_ticket,
            ("GET", "/access/acl"): self._read_acl,
            ("PUT", "/access/acl"): self._update_acl,
        }
        if (method, path) in fixed:
            return fixed[(method, path)], {}, (method, path) != ("POST", "/access/ticket")
        match = re.fullmatch(r"/access/users/([^/]+)/token(?:/([^/]+))?", path)
        if match is None:
            return None
        uri = {"userid": match.group(1)}
        if match.group(2) is None:
            return (self._token_index, uri, True) if method == "GET" else None
        uri["tokenid"] = match.group(2)
        handlers = {
            "GET": self._read_token,
            "POST": self._generate_token,
            "DELETE": self._remove_token,
        }
        return (handlers[method], uri, True) if method in handlers else None

    # -- permission helpers (RPCEnvironment.pm) ----------------------------------------------

    def _check(self, auth: Auth, path: str, privilege: str) -> None:
        if not self.access.check(auth.authid, path, [privilege]):
            raise perm_error(f"{path}, {privilege}")

    def _may_manage_tokens_of(self, auth: Auth, userid: str) -> None:
        """``['or', ['userid-param', 'self'], ['userid-group', ['User.Modify']]]``."""
        if split_userid(userid) is None:
            try:
                verify_username(userid)
            except AccessError as error:
                raise ApiError(500, f"{error}\n") from None
        exists = self.access.find_user(userid) is not None
        if exists and auth.authid == userid:
            return
        if exists and self.access.check_any(auth.authid, "/access/groups", ["User.Modify"]):
            return
        raise perm_error()

    # -- the calls -----------------------------------------------------------------------------

    def _version(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        validate(params, {})
        return self.cluster.profile.version_data(self.cluster.console)

    def _cluster_status(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        self._check(auth, "/", "Sys.Audit")
        validate(params, {})
        return self.cluster.cluster_status(request.node)

    def _nodes(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        validate(params, {})
        return self.cluster.nodes_listing(
            lambda node: self.access.check(auth.authid, f"/nodes/{node}", ["Sys.Audit"])
        )

    def _domains(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        validate(params, {})
        return [realm.entry() for realm in self.access.realms.values()]

    def _create_ticket(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        """src/PVE/API2/AccessControl.pm ``create_ticket``: any failure is the
        same 401 "authentication failure", so names cannot be probed."""
        validate(params, _TICKET_SCHEMA)
        self.cluster._count("logins")
        username = str(params["username"])
        if params.get("realm"):
            username += f"@{params['realm']}"
        password, otp = str(params["password"]), params.get("otp")
        challenge = params.get("tfa-challenge")
        access = self.access
        try:
            access.check_user_enabled(username)
            if otp is not None and challenge is not None:
                raise AccessError(
                    "TFA response should be in 'password', not 'otp' when 'tfa-challenge' is set"
                )
            needs_tfa = False
            if challenge is not None:
                # The second step: the signed challenge, the code as password.
                access.verify_ticket(str(challenge), aad=username)
                kind, _, code = password.partition(":")
                if kind != "totp" or not totp_matches(self.cluster.totp_secret, code):
                    raise AccessError("failed 2nd factor")
            else:
                ticket_user = self._ticket_user(password)
                if ticket_user is not None and ticket_user in ("root@pam", username):
                    pass  # a valid ticket renews itself (root@pam's makes any user's)
                else:
                    access.authenticate_password(username, password)
                    needs_tfa = self.cluster.scenario.second_factor
                    if needs_tfa and otp is not None:
                        if not totp_matches(self.cluster.totp_secret, str(otp)):
                            raise AccessError("failed 2nd factor")
                        needs_tfa = False
        except AccessError:
            raise ApiError(401, "authentication failure\n") from None
        result: dict[str, Any] = {"username": username}
        if needs_tfa:
            result["ticket"] = access.assemble_ticket(f"!tfa!{_TFA_CHALLENGE}", aad=username)
            result["NeedTFA"] = 1
        else:
            result["ticket"] = access.assemble_ticket(username)
            result["cap"] = access.capabilities(username)
        result["CSRFPreventionToken"] = access.assemble_csrf_token(username)
        if self.cluster.clustered and access.check(username, "/", ["Sys.Audit"]):
            result["clustername"] = self.cluster.cluster_name
        return result

    def _ticket_user(self, password: str) -> str | None:
        try:
            data, _age = self.access.verify_ticket(password)
        except AccessError:
            return None
        return None if data.startswith("!tfa!") else data

    def _token_index(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        self._may_manage_tokens_of(auth, str(params.get("userid", "")))
        validate(params, {"userid": _USERID})
        user = self._existing_user(params["userid"])
        return [{**token.info(), "tokenid": name} for name, token in user.tokens.items()]

    def _read_token(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        self._may_manage_tokens_of(auth, str(params.get("userid", "")))
        validate(params, _TOKEN_SCHEMA)
        return self._existing_token(params["userid"], params["tokenid"]).info()

    def _generate_token(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        """src/PVE/API2/User.pm ``generate_token``."""
        self._may_manage_tokens_of(auth, str(params.get("userid", "")))
        validate(params, _TOKEN_CREATE_SCHEMA)
        userid, name = params["userid"], params["tokenid"]
        user = self._existing_user(userid)
        if name in user.tokens:
            raise param_error({"tokenid": "Token already exists."})
        token, full_tokenid = self.access.create_token(
            userid,
            name,
            privsep=params.get("privsep"),
            expire=params.get("expire"),
            comment=params.get("comment"),
        )
        return {"info": token.info(), "value": token.secret, "full-tokenid": full_tokenid}

    def _remove_token(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        self._may_manage_tokens_of(auth, str(params.get("userid", "")))
        validate(params, _TOKEN_SCHEMA)
        self._existing_token(params["userid"], params["tokenid"])
        self.access.delete_token(params["userid"], params["tokenid"])
        return None

    def _existing_user(self, userid: str) -> Any:
        user = self.access.find_user(userid)
        if user is None:
            raise ApiError(500, f"no such user ('{userid}')\n")
        return user

    def _existing_token(self, userid: str, name: str) -> Any:
        token = self._existing_user(userid).tokens.get(name)
        if token is None:
            raise ApiError(500, f"no such token '{name}' for user '{userid}'\n")
        return token

    def _read_acl(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        """src/PVE/API2/ACL.pm ``read_acl``: only what the caller may audit or modify."""
        validate(params, {})
        access = self.access
        audit = access.check(auth.authid, "/access", ["Sys.Audit"])
        entries = []
        with access._lock:
            acl = {path: dict(grants) for path, grants in access.acl.items()}
        for path in sorted(acl):
            if not acl[path]:
                continue
            if not (audit or self._may_modify(auth, path)):
                continue
            for (kind, ugid), roles in sorted(acl[path].items()):
                for role, propagate in sorted(roles.items()):
                    entries.append(
                        {
                            "path": path,
                            "type": kind,
                            "ugid": ugid,
                            "roleid": role,
                            "propagate": int(propagate),
                        }
                    )
        return entries

    def _may_modify(self, auth: Auth, path: str) -> bool:
        """RPCEnvironment.pm ``check_perm_modify``'s privileges."""
        return self.access.check_any(auth.authid, path, self._modify_privileges(path))

    @staticmethod
    def _modify_privileges(path: str) -> list[str]:
        privileges = ["Permissions.Modify"]
        for prefix, extra in (
            ("/storage/", "Datastore.Allocate"),
            ("/vms/", "VM.Allocate"),
            ("/pool/", "Pool.Allocate"),
        ):
            if path.startswith(prefix) and len(path) > len(prefix):
                privileges.append(extra)
        return privileges

    def _update_acl(self, auth: Auth, params: dict[str, Any], request: ApiRequest) -> Any:
        """src/PVE/API2/ACL.pm ``update_acl``, permission ``['perm-modify', '{path}']``."""
        access = self.access
        checked = normalize_path(str(params.get("path") or ""))
        if checked is not None:
            privileges = self._modify_privileges(checked)
            if not access.check_any(auth.authid, checked, privileges):
                raise perm_error(f"{checked}, {'|'.join(privileges)}")
        validate(params, _ACL_SCHEMA)
        if not (params.get("users") or params.get("groups") or params.get("tokens")):
            raise param_error(
                dict.fromkeys(
                    ("users", "groups", "tokens"),
                    "either 'users', 'groups' or 'tokens' is required.",
                )
            )
        path = normalize_path(str(params["path"]))
        delete = _truthy(params.get("delete"))
        if path is None or (not delete and not check_path(path)):
            raise param_error({"path": f"invalid ACL path '{params['path']}'"})
        propagate = True if params.get("propagate") is None else _truthy(params["propagate"])
        held = access.privileges(auth.authid, path)
        from pve_simulator.access import ROLES

        with access._lock:
            acl = {p: {k: dict(v) for k, v in grants.items()} for p, grants in access.acl.items()}
            node = acl.setdefault(path, {})
            try:
                for role in _split_list(params["roles"]):
                    if role not in ROLES:
                        raise AccessError(f"role '{role}' does not exist")
                    if "Permissions.Modify" not in held:
                        self._check_grantable(role, held, propagate, delete)
                    for group in _split_list(params.get("groups")):
                        raise AccessError(f"group '{group}' does not exist")
                    for userid in _split_list(params.get("users")):
                        verify_username(userid)
                        if userid not in access.users:
                            raise AccessError(f"user '{userid}' does not exist")
                        _apply(node, ("user", userid), role, propagate, delete)
                    for tokenid in _split_list(params.get("tokens")):
                        parts = split_tokenid(tokenid)
                        assert parts is not None  # the format check passed
                        user = access.users.get(parts[0])
                        if user is None:
                            raise AccessError(f"no such user ('{parts[0]}')")
                        if parts[1] not in user.tokens:
                            raise AccessError(f"no such token '{parts[1]}' for user '{parts[0]}'")
                        _apply(node, ("token", tokenid), role, propagate, delete)
            except (AccessError, ApiError) as error:
                # lock_user_config: die "ACL update failed: $err", a plain
                # error (500), an exception's text stringified into it.
                detail = (
                    f"{error.status} {error.message}"
                    + "".join(f"{k}: {v}\n" for k, v in (error.errors or {}).items())
                    if isinstance(error, ApiError)
                    else f"{error}\n"
                )
                raise ApiError(500, f"ACL update failed: {detail}") from None
            access.acl = {p: grants for p, grants in acl.items() if grants}
        return None

    @staticmethod
    def _check_grantable(role: str, held: dict[str, bool], propagate: bool, delete: bool) -> None:
        from pve_simulator.access import ROLES

        verb = "remove" if delete else "add"
        for privilege in ROLES[role]:
            if privilege not in held:
                raise param_error(
                    {
                        "role": f"Cannot {verb} role '{role}' - requires 'Permissions.Modify' "
                        "or superset of privileges."
                    }
                )
            if propagate and held[privilege] != propagate and not delete:
                raise param_error(
                    {
                        "role": f"Cannot {verb} role '{role}' with propagation - requires "
                        "'Permissions.Modify' or propagated superset of privileges."
                    }
                )
        if role == "NoAccess":
            raise param_error(
                {"role": f"Cannot {verb} role '{role}' - requires 'Permissions.Modify'"}
            )


def _apply(
    node: dict[tuple[str, str], dict[str, bool]],
    key: tuple[str, str],
    role: str,
    propagate: bool,
    delete: bool,
) -> None:
    if delete:
        node.get(key, {}).pop(role, None)
        if key in node and not node[key]:
            del node[key]
    else:
        node.setdefault(key, {})[role] = propagate


def _auth_value(header: str, key: str) -> str | None:
    """pve-http-server Formatter.pm ``extract_auth_value``."""
    match = re.search(rf"(?:^|\s){re.escape(key)}(?:=| )([^;]*)", header)
    return unquote(match.group(1)) if match and match.group(1) else None


def render(reply: Reply, message_in_body: bool) -> bytes:
    """The JSON formatter (Formatter/Standard.pm ``prepare_response_data``)."""
    if reply.body is not None:
        return reply.body
    envelope: dict[str, Any] = {"data": reply.data}
    if reply.errors:
        envelope["errors"] = reply.errors
    if message_in_body and reply.status >= 400:
        envelope["message"] = reply.message
    return json.dumps(envelope, separators=(",", ":")).encode()
