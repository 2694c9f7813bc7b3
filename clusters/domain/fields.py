"""The rule each field of a cluster obeys. Every rule returns the normalised
value or raises ``FieldInvalid`` with a message that names the field, never
its value (a value may be a secret)."""

from __future__ import annotations

import re
import unicodedata
import uuid

from clusters.domain.errors import InvalidClusterId

NAME_MAX_LENGTH = 255
# A name's comparison key may be longer than the name: case folding turns one
# character into up to three ("ﬃ" → "ffi"), NFKC up to eighteen ("ﷺ"). Names
# whose key would pass this bound are refused rather than stored unindexable.
NAME_KEY_MAX_LENGTH = 3 * NAME_MAX_LENGTH
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
    """The form under which names are compared: Unicode's compatibility
    caseless match (D146: NFKD(casefold(NFKD(casefold(NFD(name)))))), kept
    composed: "prod" typed in full-width letters (U+FF50…) is "prod", and
    "café" is the same name whether its "é" is one character or "e" and a
    combining accent."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFD", name).casefold())
    return unicodedata.normalize("NFKC", folded.casefold())


# Characters that show nothing by themselves: a name made only of these looks
# empty, or like another name, in every list. Unassigned (Cn), private use
# (Co), surrogates (Cs), combining marks (M*), spaces (Zs), and Unicode's
# Default_Ignorable_Code_Point set (DerivedCoreProperties.txt), which holds
# the fillers that are letters by category (U+3164 HANGUL FILLER) — plus
# U+2800 BRAILLE PATTERN BLANK, a symbol that draws nothing.
_INVISIBLE_CATEGORIES = {"Cn", "Co", "Cs", "Mn", "Mc", "Me", "Zs"}
_DEFAULT_IGNORABLE = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)  # fmt: skip
_BLANK_SYMBOLS = {"\u2800"}


def is_invisible(char: str) -> bool:
    """Whether ``char`` shows nothing by itself (see _INVISIBLE_CATEGORIES)."""
    if char in _BLANK_SYMBOLS or unicodedata.category(char) in _INVISIBLE_CATEGORIES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _DEFAULT_IGNORABLE)


def normalise_name(raw: str) -> str:
    name = raw.strip()
    if not name:
        raise FieldInvalid("Cluster name is required")
    if len(name) > NAME_MAX_LENGTH:
        raise FieldInvalid(f"Cluster name must be at most {NAME_MAX_LENGTH} characters")
    if has_control_characters(name):
        raise FieldInvalid("Cluster name must not contain control characters")
    if any(unicodedata.category(char) == "Cs" for char in name):
        raise FieldInvalid("Cluster name must be valid Unicode text (no lone surrogates)")
    if all(is_invisible(char) for char in name):
        raise FieldInvalid(
            "Cluster name must contain a visible character: it is made only of invisible, "
            "unassigned, private-use or combining characters"
        )
    if len(name_key(name)) > NAME_KEY_MAX_LENGTH:
        raise FieldInvalid(
            f"Cluster name is too long once normalised for comparison (at most "
            f"{NAME_KEY_MAX_LENGTH} characters after Unicode compatibility folding)"
        )
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
