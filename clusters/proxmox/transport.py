"""The HTTP layer under the Proxmox VE API client, on requests.

``Transport.connect`` opens a ``Connection`` to one cluster's
``/api2/json``; ``Connection.call`` is one API call that returns the PVE
envelope's ``data`` or raises one of the domain's Proxmox errors, with a
message an operator can act on and never a secret. It knows HTTP, TLS,
timeouts and error mapping, and nothing of PVE's logins or paths: the layer
above (``api.py``) brings the headers that authenticate a call.

Hardening, each for a reason:
- ``trust_env = False``: requests would otherwise let ``REQUESTS_CA_BUNDLE`` /
  ``CURL_CA_BUNDLE`` override ``verify=False``, pick proxies and ``.netrc``
  credentials from the environment; only the registered endpoint is called.
- certificate trust is decided in one place (``tls.py``) and mounted on
  every session.
- no redirects: a redirect could carry a ticket or token elsewhere.
- bounded connect/read timeouts, response size, and time to read a body;
  optionally a deadline for everything done on one connection (a check's
  claim must outlast the check: docs/architecture.md, "Background checks").
- every socket goes to an address the network policy checked
  (``network_policy.py``): a refused target gets no packet.
- nothing a server sends is quoted but the first line of an error's text,
  short and printable, and that only when it holds no secret of the
  conversation in any encoding (``redaction.py``): the body's ``message``
  where there is one (pve-http-server 5.2 and later, the only text left
  when a reverse proxy rewrote the reason phrase), else the reason phrase;
  no redirect target, no other body text, no ``errors`` text. requests' own
  messages are never quoted (some carry header values).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
import urllib3

from clusters.domain import (
    ConnectionTarget,
    Credentials,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxNoAnswer,
    ProxmoxPermissionDenied,
    ProxmoxUnreachable,
    TokenCredentials,
)
from clusters.proxmox.network_policy import NetworkPolicy, pool_classes
from clusters.proxmox.redaction import Redactor
from clusters.proxmox.tls import CertificateTrust, FingerprintFetcher

API_ROOT = "/api2/json"
# PVE 9.1.5 and later: "Authentication failed!" (pve-manager, PVE/HTTPServer.pm).
_UNIFIED_AUTH_FAILURE = "authentication failed"
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20  # a 1,000-node /cluster/status is ~200 KiB
_READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Deadline:
    """When everything on a connection must be over (``time.monotonic()``),
    and how many seconds that allowed, for the message."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def left(self) -> float:
        return self.at - time.monotonic()


class Transport:
    """Opens connections to clusters under one client's limits and trust.
    Thread-safe: connections are never shared, the trust is."""

    def __init__(
        self,
        *,
        connect_timeout: float,
        read_timeout: float,
        ca_bundle: str | None,
        max_response_bytes: int,
        fingerprint_fetcher: FingerprintFetcher,
        network_policy: NetworkPolicy,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_response_bytes = max_response_bytes
        self.network_policy = network_policy
        self._pool_classes = pool_classes(network_policy)
        self.trust = CertificateTrust(
            ca_bundle=ca_bundle,
            fingerprint_fetcher=fingerprint_fetcher,
            fetch_timeout=connect_timeout,
        )

    @contextmanager
    def connect(
        self,
        target: ConnectionTarget,
        credentials: Credentials,
        *,
        deadline: Deadline | None = None,
    ) -> Iterator[Connection]:
        """A connection to ``target`` on behalf of ``credentials``, closed on
        leaving. The credentials only name the account in errors and are
        removed from whatever the server echoes; authenticating is the
        caller's (headers on each call). With ``deadline``, every call on it
        gets at most the time left, and none starts after it."""
        session = requests.Session()
        session.trust_env = False
        # Only https, and only through the policy's connections: no adapter
        # is left that would open a socket of its own.
        session.adapters.clear()
        session.mount("https://", self.trust.adapter(target, self._pool_classes))
        try:
            yield Connection(self, session, target, credentials, deadline)
        finally:
            session.close()


class Connection:
    """One pooled HTTP connection to one cluster's API. Not thread-safe:
    one call at a time, as on a socket."""

    def __init__(
        self,
        transport: Transport,
        session: requests.Session,
        target: ConnectionTarget,
        credentials: Credentials,
        deadline: Deadline | None = None,
    ) -> None:
        self._transport = transport
        self._session = session
        self.target = target
        self.credentials = credentials
        self.deadline = deadline
        # The layer above adds the ticket and CSRF token of a login.
        self.redactor = Redactor([credentials.secret.reveal()])

    def __repr__(self) -> str:
        return f"Connection({self.target.api_endpoint}, {self.credentials.principal})"

    def call(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> Any:
        """One API call; returns the envelope's ``data`` or raises a ProxmoxError."""
        timeouts = self._timeouts(path)
        with self._failures_mapped(path, timeouts):
            response = self._request(method, path, headers, form, timeouts)
        with response:
            body = self._read_body(path, response, timeouts[1])
        return self._unwrap(path, response, body)

    def open(self, path: str) -> None:
        """Connect now, with an unauthenticated GET of ``path`` read to its
        end so the connection is ready for the next call. Only a head start:
        it never raises, since whatever went wrong, the next call meets and
        reports it."""
        try:
            timeouts = self._timeouts(path)
            with self._request("GET", path, None, None, timeouts) as response:
                self._read_body(path, response, timeouts[1])
        except Exception:  # noqa: BLE001, S110 - only a head start; it must never fail a check
            pass

    def _timeouts(self, path: str) -> tuple[float, float]:
        """(connect, read) timeouts of the next call: the transport's, or the
        time left before the deadline where that is shorter."""
        transport = self._transport
        if self.deadline is None:
            return transport.connect_timeout, transport.read_timeout
        left = self.deadline.left()
        if left <= 0:
            raise ProxmoxUnreachable(
                f"{self.target.api_endpoint} took longer than {self.deadline.seconds:g} s, "
                f"the most a check may take, before {path} was asked"
            )
        return min(transport.connect_timeout, left), min(transport.read_timeout, left)

    def _request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
        timeouts: tuple[float, float],
    ) -> requests.Response:
        return self._session.request(
            method,
            f"{self.target.api_endpoint}{API_ROOT}{path}",
            data=form,
            headers=headers,
            timeout=timeouts,
            verify=self._transport.trust.verifies(self.target),
            allow_redirects=False,
            stream=True,
        )

    @contextmanager
    def _failures_mapped(self, path: str, timeouts: tuple[float, float]) -> Iterator[None]:
        """requests' errors for sending ``path`` as the domain's errors."""
        endpoint = self.target.api_endpoint
        transport = self._transport
        connect_timeout, read_timeout = timeouts
        try:
            yield
        except requests.exceptions.SSLError:
            raise transport.trust.failure(self.target) from None
        except requests.exceptions.ConnectTimeout:
            raise ProxmoxNoAnswer(
                f"Timed out connecting to {endpoint} after {connect_timeout:g} s"
            ) from None
        except requests.exceptions.ReadTimeout:
            raise ProxmoxUnreachable(
                f"{endpoint} did not answer {path} within {read_timeout:g} s"
            ) from None
        except requests.exceptions.ConnectionError as error:
            reason = _innermost_reason(error)
            failure = ProxmoxNoAnswer if reason == "connection refused" else ProxmoxUnreachable
            raise failure(f"Could not connect to {endpoint}: {reason}") from None
        except requests.exceptions.RequestException:
            # Never str(error): some requests errors quote header values.
            raise ProxmoxUnreachable(f"The request to {endpoint}{API_ROOT}{path} failed") from None

    def _read_body(self, path: str, response: requests.Response, read_timeout: float) -> bytes:
        endpoint = self.target.api_endpoint
        limit = self._transport.max_response_bytes
        too_large = ProxmoxBadResponse(f"{endpoint} answered {path} with more than {limit} bytes")
        too_slow = ProxmoxUnreachable(
            f"{endpoint} did not finish answering {path} within {read_timeout:g} s"
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        deadline = time.monotonic() + read_timeout
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

    def _unwrap(self, path: str, response: requests.Response, body: bytes) -> Any:
        endpoint = self.target.api_endpoint
        credentials = self.credentials
        status = response.status_code
        # PVE's error bodies carry a message from 400 on; below that only
        # the reason phrase is read.
        reason = self._error_text(response, body if status >= 400 else b"")
        if 300 <= status < 400:
            # Where it points is not quoted: whatever sits at a registered
            # address may put anything there.
            raise ProxmoxBadResponse(
                f"{endpoint} answered {path} with a redirect ({status}); "
                "redirects are not followed, register the API's own address"
            )
        if status == 401:
            raise ProxmoxAuthenticationFailed(_refusal(credentials, reason))
        if status == 403:
            doing = "read" if response.request.method in (None, "GET") else "change"
            raise ProxmoxPermissionDenied(
                f"{credentials.principal} may not {doing} {path} on {endpoint}"
                + (f" ({reason})" if reason else ""),
                reason=reason,
            )
        if status >= 500:
            raise ProxmoxBadResponse(
                f"{endpoint} answered {path} with {status}" + (f" {reason}" if reason else "")
            )
        if status != 200:
            # PVE's "errors" object (parameter -> message) is not passed on:
            # its text is the server's, and the message says enough.
            raise ProxmoxBadResponse(
                f"{endpoint} refused {path} with {status}" + (f" {reason}" if reason else "")
            )
        envelope = _parse_json(body)
        if not isinstance(envelope, dict) or "data" not in envelope:
            raise ProxmoxBadResponse(
                f"{endpoint} answered {path} with something that is not the Proxmox VE API's "
                'JSON envelope ({"data": ...}); is this the API address of a PVE node?'
            )
        return envelope["data"]

    def _error_text(self, response: requests.Response, body: bytes) -> str:
        """What the server said went wrong, fit to quote: the first line of
        the body's ``message`` when it has one and holds no secret, else the
        reason phrase; both cleaned by the redactor."""
        message = _body_message(body)
        # Searched whole, not only the line quoted: a message that holds a
        # secret anywhere is not quoted at all.
        if message and not self.redactor.reveals_secret(message):
            first_line = next(iter(message.splitlines()), "")
            quoted = self.redactor.reason(first_line)
            if quoted:
                return quoted
        return self.redactor.reason(response.reason)


def _body_message(body: bytes) -> str | None:
    """The ``message`` of an error body ``{"data": null, "message": "..."}``
    (libpve-http-server-perl 5.2 and later), or None."""
    envelope = _parse_json(body) if body else None
    message = envelope.get("message") if isinstance(envelope, dict) else None
    return message if isinstance(message, str) else None


def _refusal(credentials: Credentials, reason: str) -> str:
    """The message of a 401. PVE 9.1.5 and later word every refused token
    and ticket "Authentication failed!" without the detail earlier releases
    gave, so the message adds what that can mean and what to do."""
    refused = f"Proxmox refused the credentials of {credentials.principal}" + (
        f" ({reason})" if reason else ""
    )
    if reason.rstrip("!").strip().lower() != _UNIFIED_AUTH_FAILURE:
        return refused
    if isinstance(credentials, TokenCredentials):
        return (
            f"{refused}: the token id or secret is wrong, or the token expired or was removed "
            "on the cluster; register or edit the cluster with a valid API token"
        )
    # A password never meets it (a refused login is "authentication
    # failure"): it is the ticket that login brought.
    return (
        f"{refused}: the ticket of its login expired or the cluster no longer accepts it; "
        "the registry logs in with the password again on the next attempt"
    )


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


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
