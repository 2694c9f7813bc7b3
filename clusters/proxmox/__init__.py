"""A client for the Proxmox VE HTTPS API (``/api2/json``), in three layers:

- ``transport.py``: HTTP on requests, with ``tls.py`` for certificate trust;
  one call returns the PVE envelope's ``data`` or raises a domain error.
- ``api.py``: the PVE API on the transport, one short method per remote
  call on an authenticated ``PveSession``.
- ``client.py``: ``ProxmoxClient``, what the registry asks of a cluster.

Under them: ``network_policy.py`` (where a connection may go) and
``redaction.py`` (what of an answer may be quoted).

Callers import from here.
"""

from clusters.proxmox.client import ProxmoxClient
from clusters.proxmox.network_policy import NetworkPolicy
from clusters.proxmox.tls import FingerprintFetcher, fetch_server_fingerprint
from clusters.proxmox.transport import API_ROOT, DEFAULT_MAX_RESPONSE_BYTES

__all__ = [
    "API_ROOT",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "FingerprintFetcher",
    "NetworkPolicy",
    "ProxmoxClient",
    "fetch_server_fingerprint",
]
