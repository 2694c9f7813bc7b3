"""Logins into the audit log (docs/product-contract.md §13): Django's login
signals, sent by every login form (``/api-auth/login/``, ``/admin/login/``).

Connected in ClustersConfig.ready, after django-axes's own receivers (its app
comes first in INSTALLED_APPS), so a failure's receiver here already knows
whether axes locked the username and address out and the page answers 429.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.http import HttpRequest

from clusters.access import login_actor
from clusters.domain import AuditAction
from clusters.wiring import services

logger = logging.getLogger("clusters")

LOGIN_FORM_SHOWN_AGAIN = 200
LOCKED_OUT = 429  # django-axes's AXES_HTTP_RESPONSE_CODE


def record_login(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is None:
        return  # a login without a request (a test helper): nobody came in from anywhere
    try:
        services().audit.record_login(login_actor(user.get_username(), request))
    except Exception:  # the record must not stop the login
        logger.exception("Could not record an audit event, action=%s", AuditAction.AUTH_LOGIN)


def record_login_failed(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """The username as typed and the address; never the password (Django
    passes it masked anyway). ``status_code`` is what the login page
    answers: the form again, or django-axes's lockout."""
    if request is None:
        return
    locked_out = getattr(request, "axes_locked_out", False)
    try:
        services().audit.record_failure(
            AuditAction.AUTH_LOGIN_FAILED,
            actor=login_actor(credentials.get("username"), request),
            status_code=LOCKED_OUT if locked_out else LOGIN_FORM_SHOWN_AGAIN,
        )
    except Exception:  # the record must not change the answer
        logger.exception(
            "Could not record an audit event, action=%s", AuditAction.AUTH_LOGIN_FAILED
        )


def connect() -> None:
    user_logged_in.connect(record_login, dispatch_uid="clusters.audit.login")
    user_login_failed.connect(record_login_failed, dispatch_uid="clusters.audit.login_failed")
