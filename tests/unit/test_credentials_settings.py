"""PROXMOXER_CREDENTIALS_KEYS as the settings read it: required in
production, derived from the secret key in development, checked at startup
without ever echoing a key. Each test evaluates settings.py afresh under the
environment it sets up."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from tests.conftest import assert_secret_absent

SETTINGS_FILE = Path(__file__).resolve().parents[2] / "proxmoxer_site" / "settings.py"
SECRET_KEY = "settings-test-secret-key-0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d"


def load_settings(monkeypatch: pytest.MonkeyPatch, **environment: str) -> dict[str, Any]:
    for name in (
        "PROXMOXER_CREDENTIALS_KEYS",
        "DJANGO_SECRET_KEY",
        "DJANGO_DEBUG",
        "PROXMOXER_SIMULATOR",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS_FILE))


def test_production_without_credentials_keys_is_improperly_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ImproperlyConfigured) as raised:
        load_settings(monkeypatch, DJANGO_DEBUG="0", DJANGO_SECRET_KEY=SECRET_KEY)

    message = str(raised.value)
    assert message.startswith("PROXMOXER_CREDENTIALS_KEYS is required when DJANGO_DEBUG=0")
    assert "Fernet.generate_key()" in message


def test_production_reads_the_keys_newest_first_and_trims_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new, old = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    settings = load_settings(
        monkeypatch,
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=SECRET_KEY,
        PROXMOXER_CREDENTIALS_KEYS=f" {new} ,{old},",
    )

    assert settings["PROXMOXER_CREDENTIALS_KEYS"] == [new, old]


def test_a_malformed_key_fails_at_startup_without_showing_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    good, bad = Fernet.generate_key().decode(), "my-credentials-passphrase"

    with pytest.raises(ImproperlyConfigured) as raised:
        load_settings(
            monkeypatch,
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY=SECRET_KEY,
            PROXMOXER_CREDENTIALS_KEYS=f"{good},{bad}",
        )

    assert "key 2 of 2 is not a Fernet key" in str(raised.value)
    assert_secret_absent(bad, str(raised.value), "the settings error")
    assert_secret_absent(good, str(raised.value), "the settings error")


def test_development_derives_a_stable_key_from_the_secret_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = load_settings(monkeypatch, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=SECRET_KEY)
    again = load_settings(monkeypatch, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=SECRET_KEY)
    other = load_settings(monkeypatch, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=SECRET_KEY + "x")

    [key] = first["PROXMOXER_CREDENTIALS_KEYS"]
    assert again["PROXMOXER_CREDENTIALS_KEYS"] == [key]
    assert other["PROXMOXER_CREDENTIALS_KEYS"] != [key]
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"hunter2")) == b"hunter2"
    assert_secret_absent(SECRET_KEY, key, "the derived key")  # a derivation, not the key itself


def test_development_uses_the_given_keys_when_there_are_some(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = Fernet.generate_key().decode()

    settings = load_settings(monkeypatch, DJANGO_DEBUG="1", PROXMOXER_CREDENTIALS_KEYS=key)

    assert settings["PROXMOXER_CREDENTIALS_KEYS"] == [key]


@pytest.mark.parametrize(
    ("environment", "installed"),
    [
        ({"DJANGO_DEBUG": "0"}, False),
        ({"DJANGO_DEBUG": "1"}, True),
        ({"DJANGO_DEBUG": "0", "PROXMOXER_SIMULATOR": "1"}, True),
        ({"DJANGO_DEBUG": "1", "PROXMOXER_SIMULATOR": "0"}, False),
    ],
)
def test_the_simulator_app_is_installed_in_development_or_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], installed: bool
) -> None:
    keys = Fernet.generate_key().decode()
    settings = load_settings(
        monkeypatch, DJANGO_SECRET_KEY=SECRET_KEY, PROXMOXER_CREDENTIALS_KEYS=keys, **environment
    )

    assert ("pve_simulator" in settings["INSTALLED_APPS"]) is installed
