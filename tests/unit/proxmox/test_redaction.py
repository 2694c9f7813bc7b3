"""The reason phrases the client quotes (clusters/proxmox/redaction.py):
short, printable, and never carrying a secret of the conversation in any
encoding a server might echo it in."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest

from clusters.proxmox.redaction import REASON_MAX_LENGTH, WITHHELD, Redactor
from tests.conftest import assert_secret_absent, secret_encodings

PASSWORD = "Pa ss&word=SECRET"
TICKET = "PVE:root@pam:6745A1B2::K3Ho1r9Ykx2f3Q0hVh4bV5w5m3bM0qCq2cX8q+vHfC2Q3Yx8zQ1s=="
CSRF = "6745A1B2:Qm9vc3RlZEJ5UHJveG1veGVyVGVzdHM"


def echoes(secret: str) -> dict[str, str]:
    """Reason phrases that quote ``secret``, one per encoding."""
    data = secret.encode()
    return {
        **{kind: f"bad value {form} here" for kind, form in secret_encodings(secret).items()},
        "doubly URL-encoded": f"bad {quote(quote(secret, safe=''), safe='')}",
        "JSON-escaped, URL-encoded": f"bad {quote(json.dumps(secret)[1:-1], safe='')}",
        "base64 inside a longer base64 string": "x "
        + base64.b64encode(b"user:" + data + b":tail").decode(),
        "base64 at the second alignment": base64.b64encode(b"u:" + data).decode(),
        "URL-safe base64": base64.urlsafe_b64encode(b"u:" + data).decode(),
        "HTML entities": "".join(f"&#{ord(char)};" for char in secret),
        "UTF-8 read as Latin-1": secret.encode().decode("latin-1"),
    }


@pytest.mark.parametrize("secret", [PASSWORD, "pässwört-ünïcode", "5c1b7e0e-3f57-4c43-a7a4"])
def test_a_reason_quoting_a_secret_in_any_encoding_is_withheld_whole(secret):
    redactor = Redactor([secret])

    for kind, echo in echoes(secret).items():
        cleaned = redactor.reason(echo)

        assert cleaned == WITHHELD, kind
        assert_secret_absent(secret, cleaned, f"a {kind} echo")


def test_the_measured_echo_of_a_form_encoded_password_is_withheld():
    assert Redactor([PASSWORD]).reason("Login failed for Pa+ss%26word%3DSECRET") == WITHHELD


def test_tickets_and_csrf_tokens_added_after_a_login_are_withheld_too():
    redactor = Redactor(["the-password"])
    assert redactor.reason(f"echo {quote_plus(TICKET)}") != WITHHELD

    redactor.add(TICKET, CSRF, None)

    assert redactor.reason(f"echo {quote_plus(TICKET)}") == WITHHELD
    assert redactor.reason(f"echo {CSRF}") == WITHHELD
    assert redactor.reason(f"cookie PVEAuthCookie={quote(TICKET, safe='')}") == WITHHELD


def test_a_secret_is_found_before_the_phrase_is_shortened():
    secret = "tail-end-secret-9f2c"
    reason = "x" * (REASON_MAX_LENGTH - 5) + " " + secret

    cleaned = Redactor([secret]).reason(reason)

    assert cleaned == WITHHELD
    assert "tail-" not in cleaned


def test_an_ordinary_reason_is_quoted_printable_and_short():
    redactor = Redactor([PASSWORD])

    assert redactor.reason("Parameter verification failed.") == "Parameter verification failed."
    assert redactor.reason("  no\tticket\r\n ") == "no ticket"
    assert redactor.reason("caf\u00e9 \u202e<b>") == "caf <b>"
    long = redactor.reason("word " * 100)
    assert len(long) == REASON_MAX_LENGTH
    assert long.endswith("...")
    assert redactor.reason(None) == redactor.reason("") == ""


def test_short_secrets_do_not_withhold_every_reason_with_their_letters():
    # A three-letter secret has no base64 fragment long enough to look for.
    assert Redactor(["abc"]).reason("authentication failure") == "authentication failure"


def test_the_redactor_never_shows_its_secrets():
    redactor = Redactor([PASSWORD, TICKET])

    assert_secret_absent(PASSWORD, repr(redactor), "the redactor's repr")
    assert_secret_absent(TICKET, repr(redactor), "the redactor's repr")
