"""Headers every dashboard page carries.

The Content-Security-Policy lets a page load scripts, styles, images and
data from this service alone: the pages use no CDN, and a script injected
into one (through a cluster name, say) could neither run inline nor send
anything elsewhere. It also forbids inline scripts and styles, which keeps
the templates honest: everything lives in dashboard/static/.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    )
)

View = Callable[..., HttpResponse]


def dashboard_page(view: View) -> View:
    """Never cached (a page shows a fleet as one user may see it, now), and
    loading nothing from anywhere but this service."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.setdefault("Referrer-Policy", "same-origin")
        return response

    return never_cache(wrapped)
