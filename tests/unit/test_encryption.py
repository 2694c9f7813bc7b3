"""The credentials cipher and the stored secret it hands out: exact round
trips, keys checked without ever being echoed, and a secret that stays
masked and encrypted until someone asks for it by name."""

from __future__ import annotations

import pickle

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from clusters.domain import Secret
from clusters.encryption import CredentialCipher, CredentialsKeyError, StoredSecret
from tests.conftest import assert_secret_absent

NEW_KEY = Fernet.generate_key().decode()
OLD_KEY = Fernet.generate_key().decode()


class CountingCipher(CredentialCipher):
    def __init__(self, keys: list[str]) -> None:
        super().__init__(keys)
        self.decryptions = 0

    def decrypt(self, token: str, *, owner: str) -> str:
        self.decryptions += 1
        return super().decrypt(token, owner=owner)


@pytest.mark.parametrize(
    "plaintext",
    ["hunter2", "pässwörd-東京-🚀", "x" * 1024, "lone surrogate \udc80 kept", " padded "],
)
def test_cipher_round_trips_any_string_exactly(plaintext: str) -> None:
    cipher = CredentialCipher([NEW_KEY])

    token = cipher.encrypt(plaintext)

    assert cipher.decrypt(token, owner="cluster x") == plaintext
    assert_secret_absent(plaintext, token, "the Fernet token")


def test_cipher_encrypts_the_same_secret_differently_each_time() -> None:
    cipher = CredentialCipher([NEW_KEY])

    assert cipher.encrypt("hunter2") != cipher.encrypt("hunter2")


def test_cipher_encrypts_under_the_first_key_and_decrypts_under_any() -> None:
    old_token = CredentialCipher([OLD_KEY]).encrypt("hunter2")
    cipher = CredentialCipher([NEW_KEY, OLD_KEY])

    assert cipher.decrypt(old_token, owner="cluster x") == "hunter2"
    assert Fernet(NEW_KEY).decrypt(cipher.encrypt("hunter2")) == b"hunter2"


def test_rotate_re_encrypts_under_the_first_key() -> None:
    old_token = CredentialCipher([OLD_KEY]).encrypt("hunter2")

    rotated = CredentialCipher([NEW_KEY, OLD_KEY]).rotate(old_token, owner="cluster x")

    assert CredentialCipher([NEW_KEY]).decrypt(rotated, owner="cluster x") == "hunter2"


@pytest.mark.parametrize("operation", ["decrypt", "rotate"])
def test_a_token_under_an_unknown_key_raises_a_clear_error(operation: str) -> None:
    token = CredentialCipher([OLD_KEY]).encrypt("hunter2")
    cipher = CredentialCipher([NEW_KEY])

    with pytest.raises(CredentialsKeyError) as raised:
        getattr(cipher, operation)(token, owner="cluster Prod-EU")

    message = str(raised.value)
    assert message.startswith("The stored secret of cluster Prod-EU does not decrypt")
    assert "1 key(s) in PROXMOXER_CREDENTIALS_KEYS" in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert_secret_absent(NEW_KEY, message, "the wrong-key error")


def test_a_tampered_token_raises_the_same_clear_error() -> None:
    cipher = CredentialCipher([NEW_KEY])
    token = cipher.encrypt("hunter2")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]

    with pytest.raises(CredentialsKeyError):
        cipher.decrypt(tampered, owner="cluster x")


@pytest.mark.parametrize(
    ("keys", "position"),
    [
        (["not-a-key"], "key 1 of 1"),
        ([NEW_KEY, "c2hvcnQ="], "key 2 of 2"),  # valid base64, 5 bytes
        ([NEW_KEY, NEW_KEY[:-2]], "key 2 of 2"),  # truncated
    ],
)
def test_a_malformed_key_is_improperly_configured_and_never_echoed(
    keys: list[str], position: str
) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        CredentialCipher(keys)

    message = str(raised.value)
    assert f"PROXMOXER_CREDENTIALS_KEYS: {position} is not a Fernet key" in message
    for key in keys:
        assert_secret_absent(key, message, "the malformed-key error")


def test_no_key_at_all_is_improperly_configured() -> None:
    with pytest.raises(ImproperlyConfigured, match="PROXMOXER_CREDENTIALS_KEYS holds no key"):
        CredentialCipher([])


def test_stored_secret_decrypts_only_when_revealed_and_only_once() -> None:
    cipher = CountingCipher([NEW_KEY])
    secret = StoredSecret(cipher.encrypt("hunter2"), cipher, owner="cluster x")

    assert cipher.decryptions == 0
    assert secret.reveal() == "hunter2"
    assert secret.reveal() == "hunter2"
    assert cipher.decryptions == 1


def test_stored_secret_is_masked_like_any_secret() -> None:
    cipher = CredentialCipher([NEW_KEY])
    secret = StoredSecret(cipher.encrypt("hunter2"), cipher, owner="cluster x")
    secret.reveal()

    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r:>40}"):
        assert text.strip() == "Secret('********')"
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)


def test_stored_secret_equals_a_plain_secret_of_the_same_value_in_both_orders() -> None:
    cipher = CredentialCipher([NEW_KEY])
    stored = StoredSecret(cipher.encrypt("hunter2"), cipher, owner="cluster x")
    unrevealed = StoredSecret(cipher.encrypt("hunter2"), cipher, owner="cluster x")
    also_unrevealed = StoredSecret(cipher.encrypt("hunter2"), cipher, owner="cluster x")

    assert Secret("hunter3") != also_unrevealed  # an unrevealed one, from the left too
    assert Secret("hunter2") == unrevealed  # the subclass answers first
    assert stored == Secret("hunter2")
    assert stored != Secret("hunter3")
    assert Secret("hunter3") != stored
    assert hash(stored) == hash(Secret("hunter2"))
    assert stored != "hunter2"
