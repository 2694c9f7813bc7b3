"""Bounds on the shape of a request, so that no shape can make the API
answer 500 (docs/product-contract.md §13): JSON nested too deeply for the
interpreter's recursion limit is refused before it is parsed, and a format
the API does not speak (``?format=xml``) is 406 rather than Django's
``Http404`` escaping from content negotiation.

The other shapes are bounded elsewhere: body size and chunked bodies in
clusters/middleware.py, the number of form fields by Django's
DATA_UPLOAD_MAX_NUMBER_FIELDS (answered in clusters/api_errors.py), format
suffixes by having none (clusters/urls.py).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rest_framework.exceptions import NotAcceptable, ParseError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer

# A cluster registration is flat; 32 levels leave room for any client's
# wrapping while staying far below the ~1,000 frames Python's JSON decoder
# may recurse through.
MAX_JSON_DEPTH = 32
_JSON_STRING_RE = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET_RE = re.compile(rb"[\[\]{}]")


def json_depth_exceeds(document: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``document`` opens more than ``limit`` arrays and objects
    inside one another (brackets within strings do not count)."""
    depth = 0
    for bracket in _JSON_BRACKET_RE.finditer(_JSON_STRING_RE.sub(b'""', document)):
        if bracket.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser, after a check of the nesting depth."""

    def parse(
        self,
        stream: Any,
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        document = stream.read() if stream is not None else b""
        if json_depth_exceeds(document):
            raise ParseError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
        return super().parse(io.BytesIO(document), media_type, parser_context)


class ContentNegotiation(DefaultContentNegotiation):
    """DRF's negotiation, but an unknown ``?format=`` is 406 naming the
    formats on offer (DRF raises Django's Http404, which its handler only
    turns into a 404 after the view's own error handling has failed)."""

    def filter_renderers(
        self, renderers: Sequence[BaseRenderer], format: str
    ) -> list[BaseRenderer]:
        offered = [renderer for renderer in renderers if renderer.format == format]
        if not offered:
            formats = ", ".join(dict.fromkeys(renderer.format for renderer in renderers))
            raise NotAcceptable(f"Format {format[:20]!r} is not offered here; use one of {formats}")
        return offered
