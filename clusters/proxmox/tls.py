"""Certificate trust for the Proxmox transport: which certificates a
connection to a cluster accepts, and what an operator is told when it
refuses one.

Each measure for a reason:
- trust is an ``SSLContext`` built once per client and policy (CA-verified,
  or unverified for pins and ``verify_tls=false``) and handed to urllib3 by
  ``_TrustAdapter``; left to requests, every connection would load a CA
  store again (~25 ms of CPU each, twice per registration).
- the CA store is the configured bundle or requests' own (certifi), never
  one the environment names.
- a pin replaces CA and hostname validation: exactly the certificate with
  that SHA-256 fingerprint is accepted, as PVE's own tools and Proxmox
  Datacenter Manager do (PVE signs its certificates with a CA of its own).
- a refused certificate is reported with the fingerprint the server
  presents, fetched without trusting it, so the operator can compare it with
  the node's and pin it; that fetch connects under the same network policy
  as every call.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.utils import DEFAULT_CA_BUNDLE_PATH
from urllib3.util.ssl_ import create_urllib3_context

from clusters.domain import ConnectionTarget, ProxmoxTLSError, normalise_fingerprint
from clusters.proxmox.network_policy import NetworkPolicy

FingerprintFetcher = Callable[[str, int, float], "str | None"]


def fetch_server_fingerprint(
    host: str, port: int, timeout: float, *, network_policy: NetworkPolicy
) -> str | None:
    """The SHA-256 fingerprint (``AB:CD:…``) of the certificate a server
    presents, without trusting it; None when it cannot be had. It connects
    as every other call does, to an address ``network_policy`` checked, and
    names ``host`` in the handshake (SNI)."""
    try:
        with (
            network_policy.connect(host, port, timeout) as sock,
            _unverified_context().wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError):  # ssl.SSLError is an OSError
        return None
    if not der:
        return None
    return normalise_fingerprint(hashlib.sha256(der).hexdigest())


class CertificateTrust:
    """The trust decisions of one client: the SSLContexts (built once per
    policy, shared by every connection), the adapter that applies them, and
    the error a refused certificate becomes. Thread-safe."""

    def __init__(
        self,
        *,
        ca_bundle: str | None,
        fingerprint_fetcher: FingerprintFetcher,
        fetch_timeout: float,
    ) -> None:
        self._ca_bundle = ca_bundle
        self._fetch_fingerprint = fingerprint_fetcher
        self._fetch_timeout = fetch_timeout
        self._contexts: dict[bool, ssl.SSLContext] = {}
        self._lock = threading.Lock()

    @staticmethod
    def verifies(target: ConnectionTarget) -> bool:
        """Whether CA and hostname validation apply: a pin replaces them
        (see ``_TrustAdapter``), and requests' ``verify`` must agree with the
        context the adapter uses."""
        return target.verify_tls and not target.fingerprint

    def adapter(self, target: ConnectionTarget, pool_classes: Mapping[str, Any]) -> HTTPAdapter:
        """What a requests session to ``target`` mounts for ``https://``;
        its connections are made by ``pool_classes`` (the network policy's)."""
        return _TrustAdapter(self._context(target), target.fingerprint, pool_classes)

    def _context(self, target: ConnectionTarget) -> ssl.SSLContext:
        verify = self.verifies(target)
        with self._lock:
            context = self._contexts.get(verify)
            if context is None:
                try:
                    context = (
                        _verifying_context(self._ca_bundle) if verify else _unverified_context()
                    )
                except (OSError, ValueError):  # ssl.SSLError is an OSError
                    raise ProxmoxTLSError(
                        f"Cannot verify {target.api_endpoint}: the CA bundle "
                        f"{self._ca_bundle or DEFAULT_CA_BUNDLE_PATH} holds no readable "
                        "certificate (check PROXMOX_CA_BUNDLE)"
                    ) from None
                self._contexts[verify] = context
        return context

    def failure(self, target: ConnectionTarget) -> ProxmoxTLSError:
        """The error for a failed TLS handshake with ``target``: with the
        certificate's fingerprint, where the server shows one, to pin or to
        compare with the pin."""
        parts = urlsplit(target.api_endpoint)
        observed = self._fetch_fingerprint(
            parts.hostname or "", parts.port or 8006, self._fetch_timeout
        )
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


class _TrustAdapter(HTTPAdapter):
    """Opens every connection with one prepared SSLContext and, for a pinned
    cluster, accepts exactly the certificate with the pinned SHA-256
    fingerprint in place of CA and hostname validation.

    requests' per-request ``verify`` plumbing would put a CA file on each
    pool, which urllib3 then loads into the context for every connection;
    the context already holds the trust decision, so that is overridden here
    (``build_connection_pool_key_attributes`` is requests' documented hook
    for a custom SSLContext).
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        fingerprint: str | None = None,
        pool_classes: Mapping[str, Any] | None = None,
    ) -> None:
        self._context = context
        self._fingerprint = fingerprint
        self._pool_classes = dict(pool_classes or {})
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
        if self._pool_classes:
            self.poolmanager.pool_classes_by_scheme = self._pool_classes

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
