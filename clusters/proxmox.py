"""A small client for the Proxmox VE HTTPS API (``/api2/json``), on requests.

It does one job: log in with the operator's credentials and read what the
registry records (version, cluster status, nodes). Every failure becomes one
of the domain's Proxmox errors, with a message an operator can act on and
never a secret.

Hardening, each for a reason:
- ``trust_env = False``: requests would otherwise let ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE`` override ``verify=False``, pick proxies and ``.netrc``
  credentials from the environment; only the registered endpoint is called.
- trust is an ``SSLContext`` built once per client and policy (CA-verified,
  or unverified for pins and ``verify_tls=false``) and handed to urllib3 by
  ``_TrustAdapter``; left to requests, every connection would load a CA
  store again (~25 ms of CPU each, twice per registration).
- no redirects: a redirect could carry a ticket or token elsewhere.
- bounded connect/read timeouts, response size, and time to read a body.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_ import create_urllib3_context

from clusters.domain import (
    ClusterStatusEntry,
    ConnectionTarget,
    Credentials,
    NodeEntry,
    PasswordCredentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxError,
    ProxmoxPermissionDenied,
    ProxmoxReport,
    ProxmoxSecondFactorRequired,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    TokenCredentials,
    normalise_fingerprint,
)

API_ROOT = "/api2/json"
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20  # a 1,000-node /cluster/status is ~200 KiB
_READ_CHUNK_BYTES = 64 * 1024
_REASON_MAX_LENGTH = 200

FingerprintFetcher = Callable[[str, int, float], "str | None"]


def fetch_server_fingerprint(host: str, port: int, timeout: float) -> str | None:
    """The SHA-256 fingerprint (``AB:CD:…``) of the certificate a server
    presents, without trusting it; None when it cannot be had."""
    try:
        pem = ssl.get_server_certificate((host, port), timeout=timeout)
    except (OSError, ValueError):
        return None
    digest = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()
    return normalise_fingerprint(digest)


class _TrustAdapter(HTTPAdapter):
    """Opens every connection with one prepared SSLContext and, for a pinned
    cluster, accepts exactly the certificate with the pinned SHA-256
    fingerprint in place of CA and hostname validation (as PVE's own tools
    and Proxmox Datacenter Manager do).

    requests' per-request ``verify`` plumbing would put a CA file on each
    pool, which urllib3 then loads into the context for every connection;
    the context already holds the trust decision, so that is overridden here
    (``build_connection_pool_key_attributes`` is requests' documented hook
    for a custom SSLContext).
    """

    def __init__(self, context: ssl.SSLContext, fingerprint: str | None = None) -> None:
        self._context = context
        self._fingerprint = fingerprint
        verifies = context.verify_mode == ssl.CERT_REQUIRED
        self._cert_reqs = "CERT_REQUIRED" if verifies else "CERT_NONE"
        super().__init__(pool_maxsize=2, max_retries=0)

    def _tls_settings(self) -> dict[str, Any]:
        settings: dict[str, Any] = {"ssl_context": self._context, "cert_reqs": self._cert_reqs}
        if self._fingerprint:
            settings["assert_fingerprint"] = self._fingerprint
        return settings

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        # The pool manager's defaults too, so a pin can never fall away if
        # requests stops consulting the hook below.
        kwargs.update(self._tls_settings())
        super().init_poolmanager(*args, **kwargs)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        pool_kwargs.pop("ca_certs", None)
        pool_kwargs.pop("ca_cert_dir", None)
        pool_kwargs.update(self._tls_settings())
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
        conn.cert_reqs = self._cert_reqs
        conn.ca_certs = None
        conn.ca_cert_dir = None


def _unverified_context() -> ssl.SSLContext:
    """For pinned clusters (the pin is checked after the handshake) and for
    ``verify_tls=false``."""
    return create_urllib3_context(cert_reqs=ssl.CERT_NONE)


def _verifying_context(ca_bundle: str | None) -> ssl.SSLContext:
    """CA and hostname validation against ``ca_bundle``, or requests' own
    bundle (certifi) when none is configured: never the environment's."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    location = ca_bundle or DEFAULT_CA_BUNDLE_PATH
    if os.path.isdir(location):
        context.load_verify_locations(capath=location)
    else:
        context.load_verify_locations(cafile=location)
    return context


def _clean_reason(reason: str | None, credentials: Credentials) -> str:
    """PVE puts its error message in the HTTP reason phrase: keep it printable,
    short, and free of the secret, should a server ever echo it back."""
    text = "".join(char if char.isprintable() else " " for char in (reason or ""))
    secret = (
        credentials.secret if isinstance(credentials, TokenCredentials) else credentials.password
    )
    if secret.reveal():
        text = text.replace(secret.reveal(), "********")
    return text.strip()[:_REASON_MAX_LENGTH]


def _innermost_reason(error: BaseException) -> str:
    """'connection refused' out of requests' layered ConnectionError."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror.lower()
        if isinstance(current, socket.gaierror):
            return "host name could not be resolved"
        nested = getattr(current, "reason", None)
        if isinstance(nested, BaseException):
            current = nested
            continue
        current = current.__cause__ or current.__context__
    text = str(error).lower()
    if "name or service not known" in text or "nodename nor servname" in text:
        return "host name could not be resolved"
    if "refused" in text:
        return "connection refused"
    return "connection failed"


class _Auth:
    """Headers that authenticate each call after login."""

    def __init__(self, headers: Mapping[str, str], csrf_token: str | None = None) -> None:
        self._headers = dict(headers)
        self._csrf_token = csrf_token

    def headers_for(self, method: str) -> dict[str, str]:
        headers = dict(self._headers)
        if method != "GET" and self._csrf_token:
            headers["CSRFPreventionToken"] = self._csrf_token
        return headers

    def __repr__(self) -> str:
        return "_Auth(<redacted>)"


class ProxmoxClient:
    """Proves credentials against one cluster and reads its facts.

    Thread-safe: each ``inspect`` opens its own sessions; the executor only
    runs the status read beside the login and version read.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        ca_bundle: str | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        fingerprint_fetcher: FingerprintFetcher = fetch_server_fingerprint,
        parallel: bool = True,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ca_bundle = ca_bundle
        self.max_response_bytes = max_response_bytes
        self._fetch_fingerprint = fingerprint_fetcher
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._contexts_lock = threading.Lock()
        # A status read holds its worker through the login it waits for; the
        # service's own request threads bound how many run at once.
        self._executor = (
            ThreadPoolExecutor(max_workers=32, thread_name_prefix="proxmox") if parallel else None
        )

    # -- public -------------------------------------------------------------

    def inspect(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport:
        """Log in, then read version and cluster status side by side.

        The status read has a connection of its own, opened while the login
        is under way, so once the ticket is there both reads cost one round
        trip: a fresh connection would first spend round trips on its TCP
        and TLS handshakes. Without a login (API tokens) both reads start at
        once.
        """
        if self._executor is None:
            return self._inspect_sequentially(target, credentials)
        with self._session(target) as session, self._session(target) as status_session:
            auth_ready: Future[_Auth] = Future()
            status_read = self._executor.submit(
                self._read_cluster_status_after_login,
                status_session,
                target,
                credentials,
                auth_ready,
            )
            try:
                auth = self._authenticate(session, target, credentials)
                auth_ready.set_result(auth)
                version = self._read_version(session, target, credentials, auth)
            except BaseException as error:
                # The first error wins. The status read is over before this
                # returns (a login error ends it at once), so nothing of this
                # check is still talking to the cluster afterwards.
                if not auth_ready.done():
                    auth_ready.set_exception(error)
                wait([status_read])
                raise
            cluster_status, nodes = status_read.result()
        return ProxmoxReport(version=version, cluster_status=cluster_status, nodes=nodes)

    def _inspect_sequentially(
        self, target: ConnectionTarget, credentials: Credentials
    ) -> ProxmoxReport:
        """One connection, one call after the other (``parallel=False``, the
        benchmark's baseline)."""
        with self._session(target) as session:
            auth = self._authenticate(session, target, credentials)
            version = self._read_version(session, target, credentials, auth)
            cluster_status, nodes = self._read_cluster_status(session, target, credentials, auth)
        return ProxmoxReport(version=version, cluster_status=cluster_status, nodes=nodes)

    def _read_cluster_status_after_login(
        self,
        session: requests.Session,
        target: ConnectionTarget,
        credentials: Credentials,
        auth_ready: Future[_Auth],
    ) -> tuple[list[ClusterStatusEntry] | None, list[NodeEntry] | None]:
        if isinstance(credentials, PasswordCredentials):
            self._open_connection(session, target)
        return self._read_cluster_status(session, target, credentials, auth_ready.result())

    def _open_connection(self, session: requests.Session, target: ConnectionTarget) -> None:
        """Have ``session`` connect while the login is under way, with the one
        call PVE answers to anyone at once: ``GET /access/ticket`` (a no-op
        returning ``{"data": null}``). No credentials go with it; whatever
        goes wrong here, the login on the other connection reports."""
        try:
            response = session.get(
                f"{target.api_endpoint}{API_ROOT}/access/ticket",
                timeout=(self.connect_timeout, self.read_timeout),
                verify=self._verify(target),
                allow_redirects=False,
                stream=True,
            )
            with response:  # read to the end, so the connection can be reused
                self._read_body(target, "/access/ticket", response)
        except Exception:  # noqa: BLE001, S110 - only a head start; it must never fail a check
            pass

    # -- the calls ------------------------------------------------------------

    def _authenticate(
        self, session: requests.Session, target: ConnectionTarget, credentials: Credentials
    ) -> _Auth:
        if not isinstance(credentials, PasswordCredentials):
            token = f"PVEAPIToken={credentials.token_id}={credentials.secret.reveal()}"
            return _Auth({"Authorization": token})

        data = self._call(
            session,
            target,
            credentials,
            "POST",
            "/access/ticket",
            form={"username": credentials.username, "password": credentials.password.reveal()},
        )
        ticket = data.get("ticket") if isinstance(data, dict) else None
        if not isinstance(ticket, str) or not ticket.isascii() or not ticket.isprintable():
            raise ProxmoxBadResponse(
                f"{target.api_endpoint} answered the login without a usable ticket"
            )
        if data.get("NeedTFA") or ticket.startswith("PVE:!tfa!"):
            raise ProxmoxSecondFactorRequired(
                f"Proxmox account {credentials.username} needs a second factor (TFA), which "
                "an unattended registry cannot supply; register it with an API token instead"
            )
        csrf = data.get("CSRFPreventionToken")
        return _Auth({"Cookie": f"PVEAuthCookie={ticket}"}, csrf if isinstance(csrf, str) else None)

    def _read_version(
        self,
        session: requests.Session,
        target: ConnectionTarget,
        credentials: Credentials,
        auth: _Auth,
    ) -> str:
        data = self._call(session, target, credentials, "GET", "/version", auth=auth)
        version = data.get("version") if isinstance(data, dict) else None
        if not isinstance(version, str) or not version:
            raise ProxmoxBadResponse(f"{target.api_endpoint} answered /version without a version")
        return version[:64]

    def _read_cluster_status(
        self,
        session: requests.Session,
        target: ConnectionTarget,
        credentials: Credentials,
        auth: _Auth,
    ) -> tuple[list[ClusterStatusEntry] | None, list[NodeEntry] | None]:
        try:
            data = self._call(session, target, credentials, "GET", "/cluster/status", auth=auth)
        except ProxmoxPermissionDenied:
            # No Sys.Audit on "/": count what /nodes lets this account see.
            try:
                nodes = self._call(session, target, credentials, "GET", "/nodes", auth=auth)
            except ProxmoxPermissionDenied:
                return None, []
            return None, self._parse_nodes(target, nodes)
        return self._parse_cluster_status(target, data), None

    # -- parsing ----------------------------------------------------------------

    @staticmethod
    def _entries(target: ConnectionTarget, data: Any, path: str) -> list[dict[str, Any]]:
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise ProxmoxBadResponse(
                f"{target.api_endpoint} answered {path} with something other than a list"
            )
        return data

    def _parse_cluster_status(
        self, target: ConnectionTarget, data: Any
    ) -> list[ClusterStatusEntry]:
        return [
            ClusterStatusEntry(
                type=str(item.get("type", "")),
                name=str(item.get("name", "")),
                online=bool(item.get("online")) if "online" in item else None,
                quorate=bool(item.get("quorate")) if "quorate" in item else None,
            )
            for item in self._entries(target, data, "/cluster/status")
        ]

    def _parse_nodes(self, target: ConnectionTarget, data: Any) -> list[NodeEntry]:
        return [
            NodeEntry(node=str(item.get("node", "")), status=str(item.get("status", "unknown")))
            for item in self._entries(target, data, "/nodes")
        ]

    # -- transport --------------------------------------------------------------

    @contextmanager
    def _session(self, target: ConnectionTarget) -> Iterator[requests.Session]:
        session = requests.Session()
        session.trust_env = False
        session.mount("https://", _TrustAdapter(self._context(target), target.fingerprint))
        try:
            yield session
        finally:
            session.close()

    def _verify(self, target: ConnectionTarget) -> bool:
        # A pin replaces CA validation (see _TrustAdapter); requests only
        # needs to agree with the context the adapter uses.
        return target.verify_tls and not target.fingerprint

    def _context(self, target: ConnectionTarget) -> ssl.SSLContext:
        verify = self._verify(target)
        with self._contexts_lock:
            context = self._contexts.get(verify)
            if context is None:
                try:
                    context = (
                        _verifying_context(self.ca_bundle) if verify else _unverified_context()
                    )
                except (OSError, ValueError):  # ssl.SSLError is an OSError
                    raise ProxmoxTLSError(
                        f"Cannot verify {target.api_endpoint}: the CA bundle "
                        f"{self.ca_bundle or DEFAULT_CA_BUNDLE_PATH} holds no readable "
                        "certificate (check PROXMOX_CA_BUNDLE)"
                    ) from None
                self._contexts[verify] = context
        return context

    def _call(
        self,
        session: requests.Session,
        target: ConnectionTarget,
        credentials: Credentials,
        method: str,
        path: str,
        *,
        auth: _Auth | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Any:
        """One API call; returns the envelope's ``data`` or raises a ProxmoxError."""
        endpoint = target.api_endpoint
        try:
            response = session.request(
                method,
                f"{endpoint}{API_ROOT}{path}",
                data=form,
                headers=auth.headers_for(method) if auth else None,
                timeout=(self.connect_timeout, self.read_timeout),
                verify=self._verify(target),
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.SSLError as error:
            raise self._tls_failure(target, error) from None
        except requests.exceptions.ConnectTimeout:
            raise ProxmoxUnreachable(
                f"Timed out connecting to {endpoint} after {self.connect_timeout:g} s"
            ) from None
        except requests.exceptions.ReadTimeout:
            raise ProxmoxUnreachable(
                f"{endpoint} did not answer {path} within {self.read_timeout:g} s"
            ) from None
        except requests.exceptions.ConnectionError as error:
            raise ProxmoxUnreachable(
                f"Could not connect to {endpoint}: {_innermost_reason(error)}"
            ) from None
        except requests.exceptions.RequestException:
            # Never str(error): some requests errors quote header values.
            raise ProxmoxUnreachable(f"The request to {endpoint}{API_ROOT}{path} failed") from None

        with response:
            body = self._read_body(target, path, response)
        return self._unwrap(target, credentials, path, response, body)

    def _read_body(self, target: ConnectionTarget, path: str, response: requests.Response) -> bytes:
        endpoint = target.api_endpoint
        limit = self.max_response_bytes
        too_large = ProxmoxBadResponse(f"{endpoint} answered {path} with more than {limit} bytes")
        too_slow = ProxmoxUnreachable(
            f"{endpoint} did not finish answering {path} within {self.read_timeout:g} s"
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        deadline = time.monotonic() + self.read_timeout
        chunks: list[bytes] = []
        size = 0
        try:
            # read1 returns whatever one socket read brings: a server that
            # trickles its body a byte at a time never lets a read time out,
            # and iter_content() would wait for a whole chunk before the
            # deadline could be checked.
            while chunk := response.raw.read1(_READ_CHUNK_BYTES, decode_content=True):
                size += len(chunk)
                if size > limit:
                    raise too_large
                if time.monotonic() > deadline:
                    raise too_slow
                chunks.append(chunk)
        except urllib3.exceptions.ReadTimeoutError:
            raise too_slow from None
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError):
            raise ProxmoxUnreachable(f"{endpoint} broke off its answer to {path}") from None
        return b"".join(chunks)

    def _unwrap(
        self,
        target: ConnectionTarget,
        credentials: Credentials,
        path: str,
        response: requests.Response,
        body: bytes,
    ) -> Any:
        endpoint = target.api_endpoint
        status = response.status_code
        reason = _clean_reason(response.reason, credentials)
        if 300 <= status < 400:
            location = _clean_reason(response.headers.get("Location"), credentials)
            raise ProxmoxBadResponse(
                f"{endpoint} answered {path} with a redirect ({status}) to {location or '?'}; "
                "redirects are not followed, register the API's own address"
            )
        if status == 401:
            raise ProxmoxAuthenticationFailed(
                f"Proxmox refused the credentials of {credentials.principal}"
                + (f" ({reason})" if reason else "")
            )
        if status == 403:
            raise ProxmoxPermissionDenied(
                f"{credentials.principal} may not read {path} on {endpoint}"
            )
        if status >= 500:
            raise ProxmoxBadResponse(
                f"{endpoint} answered {path} with {status}" + (f" {reason}" if reason else "")
            )
        envelope = self._parse_envelope(body)
        if status != 200:
            errors = envelope.get("errors") if isinstance(envelope, dict) else None
            raise ProxmoxBadResponse(
                f"{endpoint} refused {path} with {status}" + (f" {reason}" if reason else ""),
                details={"proxmox_errors": errors} if isinstance(errors, dict) else None,
            )
        if not isinstance(envelope, dict) or "data" not in envelope:
            raise ProxmoxBadResponse(
                f"{endpoint} answered {path} with something that is not the Proxmox VE API's "
                'JSON envelope ({"data": ...}); is this the API address of a PVE node?'
            )
        return envelope["data"]

    @staticmethod
    def _parse_envelope(body: bytes) -> Any:
        try:
            return json.loads(body)
        except ValueError:
            return None

    def _tls_failure(self, target: ConnectionTarget, error: Exception) -> ProxmoxError:
        parts = urlsplit(target.api_endpoint)
        host = parts.hostname or ""
        observed = self._fetch_fingerprint(host, parts.port or 8006, self.connect_timeout)
        endpoint = target.api_endpoint
        if target.fingerprint:
            if observed and observed != target.fingerprint:
                return ProxmoxTLSError(
                    f"The certificate of {endpoint} does not match the pinned fingerprint: "
                    f"expected {target.fingerprint}, got {observed}",
                    details={"expected_fingerprint": target.fingerprint, "fingerprint": observed},
                )
            return ProxmoxTLSError(f"TLS handshake with {endpoint} failed")
        if observed is None:
            return ProxmoxTLSError(f"TLS handshake with {endpoint} failed")
        return ProxmoxTLSError(
            f"The certificate of {endpoint} is not trusted. If it is the cluster's own "
            "certificate (PVE signs its own by default), compare this fingerprint with the one "
            "the node shows under System > Certificates and register again with it as "
            f'"fingerprint": {observed}',
            details={"fingerprint": observed},
        )
