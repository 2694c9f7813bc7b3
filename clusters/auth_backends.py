"""Login throttling (docs/security.md, "Login throttling"): django-axes's
backend, first in AUTHENTICATION_BACKENDS, refuses a locked-out username and
address before any password is checked."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes's check, for logins that come with a request.

    axes refuses to work without one (it counts by address); a login without
    a request is not a web login — Django's test client's ``login()``, a
    script — so there is no address to count and nothing to throttle: the
    next backend decides alone.
    """

    def authenticate(  # type: ignore[override]
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
