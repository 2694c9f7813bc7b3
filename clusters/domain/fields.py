"""The rule each field of a cluster obeys. Every rule returns the normalised
value or raises ``FieldInvalid`` with a message that names the field, never
its value (a value may be a secret)."""

from __future__ import annotations

import re
import unicodedata
import uuid

from clusters.domain.errors import InvalidClusterId

NAME_MAX_LENGTH = 255
USERID_MAX_LENGTH = 64  # PVE's own limit for pve-userid
TOKEN_NAME_MAX_LENGTH = 64
SECRET_MAX_LENGTH = 1024


class FieldInvalid(ValueError):
    pass


_CONTROL_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
# PVE's own patterns (PVE::Auth::Plugin): user is anything but whitespace,
# ':' and '/'; realms and token names start with a letter.
_REALM = r"[A-Za-z][A-Za-z0-9.\-_]+"
_USERID_RE = re.compile(rf"^[^\s:/]+@{_REALM}$")
_TOKENID_RE = re.compile(rf"^[^\s:/]+@{_REALM}![A-Za-z][A-Za-z0-9.\-_]+$")
_HEX_RE = re.compile(r"^[0-9A-Fa-f]{64}$")


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(char) in _CONTROL_CATEGORIES for char in value)


def name_key(name: str) -> str:
    """The form under which names are compared: case-insensitive."""
    return name.casefold()


def normalise_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise FieldInvalid("Cluster name is required")
    if len(name) > NAME_MAX_LENGTH:
        raise FieldInvalid(f"Cluster name must be at most {NAME_MAX_LENGTH} characters")
    if has_control_characters(name):
        raise FieldInvalid("Cluster name must not contain control characters")
    return name


def normalise_username(raw: str) -> str:
    username = raw.strip()
    if len(username) > USERID_MAX_LENGTH:
        raise FieldInvalid(f"Username must be at most {USERID_MAX_LENGTH} characters")
    if not _USERID_RE.match(username):
        raise FieldInvalid("Username must include its realm, like root@pam or admin@pve")
    return username


def normalise_token_id(raw: str) -> str:
    token_id = raw.strip()
    if len(token_id) > USERID_MAX_LENGTH + 1 + TOKEN_NAME_MAX_LENGTH:
        raise FieldInvalid("Token id is too long")
    if not _TOKENID_RE.match(token_id):
        raise FieldInvalid("Token id must look like user@realm!tokenname, e.g. root@pam!proxmoxer")
    return token_id


def normalise_fingerprint(raw: str) -> str:
    """``ab:cd…`` or ``ABCD…`` (SHA-256) → ``AB:CD:…``, as PVE shows it."""
    digits = raw.strip().replace(":", "")
    if not _HEX_RE.match(digits):
        raise FieldInvalid(
            "Fingerprint must be a SHA-256 fingerprint: 64 hex digits, colons optional"
        )
    digits = digits.upper()
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def check_secret(raw: str, label: str) -> str:
    """A password or token secret: present, bounded, printable. Kept as typed."""
    if not raw:
        raise FieldInvalid(f"{label} is required")
    if len(raw) > SECRET_MAX_LENGTH:
        raise FieldInvalid(f"{label} must be at most {SECRET_MAX_LENGTH} characters")
    if has_control_characters(raw):
        raise FieldInvalid(f"{label} must not contain control characters")
    return raw


def parse_cluster_id(raw: str | uuid.UUID) -> uuid.UUID:
    if isinstance(raw, uuid.UUID):
        return raw
    if len(raw) > 45:  # the longest form UUID() accepts: "urn:uuid:{…}"
        raise InvalidClusterId()
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise InvalidClusterId() from None
