"""Where a cluster's API is: the rules that turn whatever an operator pastes
into one normalised ``https://host:port[/prefix]`` form
(docs/product-contract.md §4, ``api_endpoint``)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from clusters.domain.fields import FieldInvalid, has_control_characters

PROXMOX_DEFAULT_PORT = 8006
HTTPS_DEFAULT_PORT = 443
ENDPOINT_MAX_LENGTH = 2048

_HOSTNAME_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# A reverse proxy's path prefix: plain segments only, so that it can never
# smuggle in a query, a parent directory or an encoded character.
_PREFIX_SEGMENT_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_API_ROOT = "/api2/json"
# The PVE web UI keeps its view in the fragment: "#v1:0:=node%2Fpve1:4:::::::"
# (pve-manager www/manager6/StateProvider.js, hprefix "v1").
_WEB_UI_FRAGMENT_RE = re.compile(r"^v1(:|$)")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A normalised API endpoint. ``url`` is what is stored and called:
    ``https://host:port`` and the proxy's path prefix, if any, so that a call
    goes to ``<url>/api2/json/…``."""

    host: str  # lower case; an IPv6 address in brackets
    port: int
    prefix: str = ""  # "" or "/pve"
    port_implied: bool = False  # https:// without a port: 443 was chosen, not typed

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}{self.prefix}"

    def no_answer_hint(self) -> str | None:
        """What to suggest when nothing answers: ``https://host`` means 443,
        where a reverse proxy would listen, but PVE itself listens on 8006."""
        if not (self.port_implied and self.port == HTTPS_DEFAULT_PORT):
            return None
        return (
            f"https:// without a port means {HTTPS_DEFAULT_PORT}; Proxmox VE's own API listens "
            f"on {PROXMOX_DEFAULT_PORT}: try https://{self.host}:{PROXMOX_DEFAULT_PORT}"
        )

    @property
    def suggested(self) -> str:
        return f"https://{self.host}:{PROXMOX_DEFAULT_PORT}"


# A last label of digits (or 0x and hex digits) makes the C resolver read the
# whole host as an IPv4 address in the old inet_aton spellings: 2130706433,
# 0x7f000001, 0177.0.0.1 and 127.1 all mean 127.0.0.1. No DNS name ends so.
_NUMERIC_LABEL_RE = re.compile(r"^(?:[0-9]+|0[xX][0-9A-Fa-f]*)$")


def _normalise_host(host: str) -> str:
    if ":" in host:  # urlsplit has already stripped the IPv6 brackets
        if "%" in host:
            # A zone id (fe80::1%eth0) names an interface of *this* host; it
            # cannot be put into a URL requests sends as typed, and it means
            # nothing on another host of the registry.
            raise FieldInvalid(
                "API endpoint must not carry an IPv6 zone id (%…): link-local addresses "
                "cannot be registered; use the node's routable address or its name"
            )
        try:
            return f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            raise FieldInvalid("API endpoint has an invalid IPv6 address") from None
    try:
        return str(ipaddress.IPv4Address(host))
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if _NUMERIC_LABEL_RE.match(labels[-1]):
        # Refused rather than normalised: an operator who typed 0177.0.0.1
        # should see what it means, and the network policy judges addresses
        # in one spelling only.
        raise FieldInvalid(
            "API endpoint must write an IPv4 address as four decimal numbers without leading "
            "zeros, like 10.0.0.5 (integer, octal and hex forms are refused)"
        )
    if len(host) > 253 or not all(_HOSTNAME_LABEL_RE.match(label) for label in labels):
        raise FieldInvalid("API endpoint must name a valid host")
    return ".".join(labels).lower()


def _prefix(path: str) -> str:
    """The reverse proxy's path prefix: the path without a trailing ``/`` or
    ``/api2/json``; refused unless made of plain segments."""
    path = path.rstrip("/")
    if path.endswith(_API_ROOT):
        path = path[: -len(_API_ROOT)].rstrip("/")
    if not path:
        return ""
    segments = path.split("/")[1:]
    if "api2" in segments:
        raise FieldInvalid(
            "API endpoint must end where /api2/json begins, like https://pve1:8006 or "
            "https://proxy.example.com/pve"
        )
    if any(segment in (".", "..") or not _PREFIX_SEGMENT_RE.match(segment) for segment in segments):
        raise FieldInvalid(
            "API endpoint path must be a plain prefix like /pve (letters, digits, '.', '_', "
            "'~', '-' between slashes)"
        )
    return path


def parse_endpoint(raw: str) -> Endpoint:
    """Read anything an operator might paste as an API endpoint.

    A bare host gets ``https://`` and PVE's port 8006; ``https://`` without a
    port means 443 (a reverse proxy). A path prefix is kept, a trailing
    ``/`` or ``/api2/json`` dropped, and the PVE web UI's own address
    (``https://pve1:8006/#v1:…``) loses its fragment. Plain http, userinfo,
    queries and other fragments are refused: they would send credentials in
    clear text, or to somewhere other than the API.
    """
    value = raw.strip()
    if not value:
        raise FieldInvalid("API endpoint is required")
    if len(value) > ENDPOINT_MAX_LENGTH:
        raise FieldInvalid(f"API endpoint must be at most {ENDPOINT_MAX_LENGTH} characters")
    if has_control_characters(value) or any(char.isspace() for char in value):
        raise FieldInvalid("API endpoint must not contain spaces or control characters")
    typed_scheme = "://" in value
    if not typed_scheme:
        with contextlib.suppress(ValueError):  # a bare IPv6 address, without brackets
            value = f"[{ipaddress.IPv6Address(value).compressed}]"
        value = f"https://{value}"

    scheme = value.split("://", 1)[0].lower()
    if scheme != "https":
        raise FieldInvalid(
            f"API endpoint must use https:// (got {scheme}://); Proxmox VE serves its API "
            "over HTTPS on port 8006"
        )
    value, _, fragment = value.partition("#")
    if "?" in value:
        raise FieldInvalid("API endpoint must not carry a query")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:
        if "IPv6" in str(error):
            raise FieldInvalid("API endpoint has an invalid IPv6 address") from None
        raise FieldInvalid("API endpoint must be https://host[:port], port 1-65535") from None
    if "@" in parts.netloc:
        raise FieldInvalid(
            "API endpoint must not embed credentials; use the username/password or token fields"
        )
    if fragment and not (_WEB_UI_FRAGMENT_RE.match(fragment) and parts.path in ("", "/")):
        raise FieldInvalid(
            "API endpoint must not carry a fragment (only the PVE web UI's own #v1:… is "
            "accepted, and dropped)"
        )
    if not parts.hostname:
        raise FieldInvalid("API endpoint must name a host")
    if port == 0:
        raise FieldInvalid("API endpoint must be https://host[:port], port 1-65535")
    host = _normalise_host(parts.hostname)
    prefix = _prefix(parts.path)
    if port is not None:
        return Endpoint(host, port, prefix)
    if typed_scheme:
        return Endpoint(host, HTTPS_DEFAULT_PORT, prefix, port_implied=True)
    return Endpoint(host, PROXMOX_DEFAULT_PORT, prefix, port_implied=True)


def normalise_endpoint(raw: str) -> str:
    """``https://host:port[/prefix]`` for anything an operator might paste."""
    return parse_endpoint(raw).url
