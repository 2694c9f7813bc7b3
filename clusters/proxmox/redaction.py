"""What of a cluster's answers may be quoted: a short, cleaned reason phrase
or error message, and never a secret in any encoding (docs/product-contract.md
§13).

PVE puts its error message in the HTTP reason phrase, and from
pve-http-server 5.2 in the error body's ``message`` too; the client quotes
it to the operator, in the log and in the stored ``last_error``. The server
at a registered address need not be PVE, and a server may echo what it was
sent: the password of the login form comes back URL-encoded
(``Pa+ss%26word%3DSECRET``), a token JSON-escaped, a ticket base64-encoded.
A reason phrase or message is therefore quoted only when no secret of the
conversation (password or token secret, and the ticket and CSRF token a login
brought) is in it in any of those encodings; otherwise it is withheld whole
(for a message, the transport falls back to the reason phrase, checked the
same way). It is checked before it is shortened, so a cut cannot leave half
a secret behind, and shortened to printable ASCII.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote, unquote_plus

REASON_MAX_LENGTH = 100
WITHHELD = "[reason withheld: it quoted a credential]"
# Below this, a base64 fragment of a secret would match ordinary text.
_MIN_BASE64_FRAGMENT = 4

_JSON_ESCAPE_RE = re.compile(r'\\(u[0-9a-fA-F]{4}|["\\/bfnrt])')
_JSON_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


def _json_unescape(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape[0] == "u":
            return chr(int(escape[1:], 16))
        return _JSON_SIMPLE_ESCAPES[escape]

    unescaped = _JSON_ESCAPE_RE.sub(replace, text)
    # \ud83d\ude00 arrives as two surrogates: join them into one character.
    return unescaped.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _utf8_read_as_latin1(text: str) -> str:
    # http.client reads a reason phrase as ISO-8859-1: a UTF-8 secret echoed
    # raw arrives as "pÃ¤ss" for "päss".
    return text.encode("latin-1", "ignore").decode("utf-8", "ignore")


_DECODINGS: tuple[Callable[[str], str], ...] = (
    unquote_plus,  # form encoding: + is a space
    unquote,  # URL encoding: + is a plus
    _json_unescape,
    html.unescape,
    _utf8_read_as_latin1,
)


def _decoded_forms(text: str, depth: int = 2) -> set[str]:
    """``text`` and what it reads as under each decoding, applied up to
    ``depth`` times (a JSON-escaped form field, a doubly URL-encoded one)."""
    forms = {text}
    frontier = [text]
    for _ in range(depth):
        frontier = [
            decoded
            for form in frontier
            for decode in _DECODINGS
            if (decoded := decode(form)) not in forms
        ]
        forms.update(frontier)
    return forms


def _base64_fragments(secret: str) -> set[str]:
    """The base64 text that encodes ``secret`` wherever it sits in a longer
    encoded string: for each of the three byte alignments, the characters
    that depend on the secret's bytes alone, in the standard and the
    URL-safe alphabet."""
    data = secret.encode()
    fragments: set[str] = set()
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + data).decode()
        start = -(-8 * offset // 6)  # the first character with only secret bits
        end = 8 * (offset + len(data)) // 6
        fragment = encoded[start:end]
        if len(fragment) >= _MIN_BASE64_FRAGMENT:
            fragments.add(fragment)
            fragments.add(fragment.replace("+", "-").replace("/", "_"))
    return fragments


class Redactor:
    """The secrets of one conversation with a cluster, and the cleaning of
    whatever that cluster sends before any of it is quoted. Secrets are
    added as the conversation learns them (a login's ticket)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: list[str] = []
        self._fragments: set[str] = set()
        self.add(*secrets)

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._secrets)} secrets>)"

    def add(self, *secrets: str | None) -> None:
        for secret in secrets:
            if secret and secret not in self._secrets:
                self._secrets.append(secret)
                self._fragments |= _base64_fragments(secret)

    def reveals_secret(self, text: str) -> bool:
        """Whether ``text`` holds a secret, plainly or encoded."""
        if not self._secrets or not text:
            return False
        if any(fragment in text for fragment in self._fragments):
            return True
        return any(secret in form for form in _decoded_forms(text) for secret in self._secrets)

    def reason(self, text: str | None) -> str:
        """A reason phrase fit to quote: printable ASCII, whitespace
        collapsed, at most REASON_MAX_LENGTH characters; WITHHELD when it
        holds a secret; empty when there is none."""
        if not text:
            return ""
        if self.reveals_secret(text):
            return WITHHELD
        printable = "".join(char if " " <= char <= "~" else " " for char in text)
        cleaned = " ".join(printable.split())
        if len(cleaned) > REASON_MAX_LENGTH:
            cleaned = cleaned[: REASON_MAX_LENGTH - 3].rstrip() + "..."
        return cleaned
