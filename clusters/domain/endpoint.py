"""Where a cluster's API is: the rules that turn whatever an operator pastes
into one normalised ``https://host:port`` form."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from urllib.parse import urlsplit

from clusters.domain.fields import FieldInvalid, has_control_characters

PROXMOX_DEFAULT_PORT = 8006
ENDPOINT_MAX_LENGTH = 2048

_HOSTNAME_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
# A last label of digits (or 0x and hex digits) makes the C resolver read the
# whole host as an IPv4 address in the old inet_aton spellings: 2130706433,
# 0x7f000001, 0177.0.0.1 and 127.1 all mean 127.0.0.1. No DNS name ends so.
_NUMERIC_LABEL_RE = re.compile(r"^(?:[0-9]+|0[xX][0-9A-Fa-f]*)$")


def _normalise_host(host: str) -> str:
    if ":" in host:  # urlsplit has already stripped the IPv6 brackets
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


def normalise_endpoint(raw: str) -> str:
    """Return ``https://host:port`` for anything an operator might paste.

    A bare host gets ``https://`` and PVE's port 8006; a trailing ``/`` or
    ``/api2/json`` is dropped. Plain http, userinfo, queries and fragments
    are refused: they would send credentials in clear text, or to somewhere
    other than the API root.
    """
    value = raw.strip()
    if not value:
        raise FieldInvalid("API endpoint is required")
    if len(value) > ENDPOINT_MAX_LENGTH:
        raise FieldInvalid(f"API endpoint must be at most {ENDPOINT_MAX_LENGTH} characters")
    if has_control_characters(value) or any(char.isspace() for char in value):
        raise FieldInvalid("API endpoint must not contain spaces or control characters")
    if "://" not in value:
        with contextlib.suppress(ValueError):  # a bare IPv6 address, without brackets
            value = f"[{ipaddress.IPv6Address(value).compressed}]"
        value = f"https://{value}"

    scheme = value.split("://", 1)[0].lower()
    if scheme != "https":
        raise FieldInvalid(
            f"API endpoint must use https:// (got {scheme}://); Proxmox VE serves its API "
            "over HTTPS on port 8006"
        )
    if "?" in value or "#" in value:
        raise FieldInvalid("API endpoint must not carry a query or a fragment")
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
    if parts.path.rstrip("/") not in ("", "/api2/json"):
        raise FieldInvalid(
            "API endpoint must be the server root, like https://pve.example.com:8006"
        )
    if not parts.hostname:
        raise FieldInvalid("API endpoint must name a host")
    if port == 0:
        raise FieldInvalid("API endpoint must be https://host[:port], port 1-65535")
    return f"https://{_normalise_host(parts.hostname)}:{port or PROXMOX_DEFAULT_PORT}"
