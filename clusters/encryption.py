"""Secrets at rest: the database backend stores passwords and token secrets
only as Fernet tokens, under the keys of ``PROXMOXER_CREDENTIALS_KEYS``.

The keys are a list, newest first. MultiFernet encrypts with the first and
decrypts with any, which is what rotation needs: put a new key in front,
re-encrypt (``manage.py rotate_credentials_key``), then drop the old one.
Nothing here ever puts a key or a plaintext into a message.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from clusters.domain import Secret

KEYS_SETTING = "PROXMOXER_CREDENTIALS_KEYS"
GENERATE_KEY_COMMAND = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
# Python strings may hold lone surrogates that strict UTF-8 refuses; a stored
# secret must come back exactly as it went in, whatever it holds.
_ENCODING_ERRORS = "surrogatepass"


class CredentialsKeyError(Exception):
    """A stored secret does not decrypt with any configured key."""


def parse_keys(keys: Sequence[str]) -> list[Fernet]:
    """One Fernet per key; ImproperlyConfigured names the bad key's position only."""
    if not keys:
        raise ImproperlyConfigured(
            f"{KEYS_SETTING} holds no key; generate one with {GENERATE_KEY_COMMAND}"
        )
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except (ValueError, TypeError):
            raise ImproperlyConfigured(
                f"{KEYS_SETTING}: key {position} of {len(keys)} is not a Fernet key "
                f"(32 url-safe base64-encoded bytes); generate one with {GENERATE_KEY_COMMAND}"
            ) from None
    return fernets


class CredentialCipher:
    """Encrypts secrets under the newest key; decrypts under any of them."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._fernet = MultiFernet(parse_keys(keys))
        self.key_count = len(keys)

    @classmethod
    def from_settings(cls) -> CredentialCipher:
        return cls(getattr(settings, KEYS_SETTING))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8", _ENCODING_ERRORS)).decode("ascii")

    def decrypt(self, token: str, *, owner: str) -> str:
        """``owner`` names whose secret this is, for the error message."""
        try:
            return self._fernet.decrypt(token).decode("utf-8", _ENCODING_ERRORS)
        except (InvalidToken, UnicodeError):
            raise self._undecryptable(owner) from None

    def rotate(self, token: str, *, owner: str) -> str:
        """The same secret, encrypted under the newest key."""
        try:
            return self._fernet.rotate(token).decode("ascii")
        except InvalidToken:
            raise self._undecryptable(owner) from None

    def _undecryptable(self, owner: str) -> CredentialsKeyError:
        return CredentialsKeyError(
            f"The stored secret of {owner} does not decrypt with any of the {self.key_count} "
            f"key(s) in {KEYS_SETTING}: the key it was encrypted with is not configured "
            "(removed before `manage.py rotate_credentials_key` ran, or another deployment's "
            "keys), or the stored value was altered."
        )


class StoredSecret(Secret):
    """A secret read from the database, decrypted on its first ``reveal()``.

    Listing and showing clusters never needs a secret, so those reads
    neither pay for decryption (~30 µs a row) nor hold any plaintext; a
    missing key surfaces where a secret is used, as CredentialsKeyError.
    """

    __slots__ = ("_cipher", "_owner", "_token")

    def __init__(self, token: str, cipher: CredentialCipher, *, owner: str) -> None:
        # The inherited ``_value`` slot stays unset until reveal() fills it.
        self._token = token
        self._cipher = cipher
        self._owner = owner

    @property
    def cipher(self) -> CredentialCipher:
        return self._cipher

    @property
    def token(self) -> str:
        """The Fernet token as stored (ciphertext, safe to compare and copy)."""
        return self._token

    def reveal(self) -> str:
        try:
            return self._value
        except AttributeError:
            self._value = self._cipher.decrypt(self._token, owner=self._owner)
            return self._value

    # Secret compares and hashes its ``_value`` directly, which is unset here
    # until revealed; Python asks the subclass first, so these cover both orders.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(
            self.reveal().encode("utf-8", _ENCODING_ERRORS),
            other.reveal().encode("utf-8", _ENCODING_ERRORS),
        )

    def __hash__(self) -> int:
        return hash(self.reveal())
