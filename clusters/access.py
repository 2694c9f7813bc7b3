"""Who is asking, what they may do, and the record of what they were refused
— at the API's edge (docs/product-contract.md §13).

The use cases decide permissions themselves (``clusters.domain.permissions``);
``RolePermission`` applies the same rule to every DRF view before it runs, so
that views no use case stands behind (the API root, the schema, the Swagger
UI) are covered too, and so that the browsable API shows a form only to
someone allowed to send it.

What the API refused or failed is recorded in the audit log from here:
``record_refusal`` is called by the exception handler, where the status
answered is known.
"""

from __future__ import annotations

import ipaddress
import logging
import uuid
from typing import TYPE_CHECKING, Any

from django.http import HttpRequest
from rest_framework import exceptions, permissions
from rest_framework.request import Request

from clusters.domain import (
    NAME_MAX_LENGTH,
    Actor,
    AuditAction,
    InvalidClusterId,
    Permission,
    may,
    parse_cluster_id,
)
from clusters.domain.fields import has_control_characters
from clusters.domain.permissions import needs
from clusters.wiring import services

if TYPE_CHECKING:
    # Not at run time: DRF's views module reads DEFAULT_PERMISSION_CLASSES,
    # which names this module, as it is imported.
    from rest_framework.views import APIView

logger = logging.getLogger("clusters.api")

ACTOR_NAME_MAX_LENGTH = 150  # Django's username field


def source_ip(request: HttpRequest) -> str | None:
    """Where a request came from, as the audit log records it: the peer
    address, as django-axes counts logins by it (behind a reverse proxy,
    the proxy's; docs/security.md, "Login throttling")."""
    address = request.META.get("REMOTE_ADDR") or ""
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None  # a Unix socket, or a test client's placeholder


def actor_of(user: Any, *, source_ip: str | None = None) -> Actor:
    """A registry account (a Django user) as the use cases see it."""
    return Actor(
        username=user.get_username(),
        is_superuser=user.is_superuser,
        groups=frozenset(user.groups.values_list("name", flat=True)),
        source_ip=source_ip,
    )


def actor_for(request: Request | HttpRequest) -> Actor:
    """The registry account behind an authenticated request (worked out
    once per request: the permission check and the view both ask)."""
    user = request.user
    cached = getattr(request, "_registry_actor", None)
    if cached is not None and cached[0] is user:
        return cached[1]  # type: ignore[no-any-return]
    actor = actor_of(user, source_ip=source_ip(request))
    request._registry_actor = (user, actor)  # type: ignore[union-attr]
    return actor


# What a view asks of the caller unless it says otherwise: reading needs
# VIEW, anything else OPERATE. A view sets ``required_permission`` to ask
# for one permission whatever the method (the audit log: AUDIT).
_WHAT = {
    Permission.VIEW: "read the registry",
    Permission.OPERATE: "change the registry",
    Permission.AUDIT: "read the audit log",
}


def required_permission(request: Request, view: APIView) -> Permission:
    fixed = getattr(view, "required_permission", None)
    if fixed is not None:
        return Permission(fixed)
    return Permission.VIEW if request.method in permissions.SAFE_METHODS else Permission.OPERATE


class RolePermission(permissions.BasePermission):
    """Authenticated, and in a role that grants what the view needs.

    Refuses with DRF's PermissionDenied (the message of the domain's
    ``authorize``), not the domain's Forbidden, because the browsable API
    asks permission classes whether to show a form and expects DRF's
    exceptions.
    """

    message = "Forbidden"

    def has_permission(self, request: Request, view: APIView) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False  # DRF answers 401 (NotAuthenticated)
        permission = required_permission(request, view)
        actor = actor_for(request)
        if may(actor, permission):
            return True
        self.message = (
            f"{actor.username} may not {_WHAT[permission]}: that takes {needs(permission)}"
        )
        return False


# -- the record of refusals and failures -------------------------------------------


def _cluster_id(view: Any) -> uuid.UUID | None:
    raw = (getattr(view, "kwargs", None) or {}).get("pk")
    if not isinstance(raw, str):
        return None
    try:
        return parse_cluster_id(raw)
    except InvalidClusterId:
        return None


def _typed_name(request: Request) -> str | None:
    """The cluster name a failed registration or edit asked for, if it is
    one a name could be (the event shows what was attempted; never any
    other field of the body, where the secrets are)."""
    try:
        data = request.data
    except exceptions.APIException:  # an unparseable body: no name to record
        return None
    name = data.get("name") if hasattr(data, "get") else None
    if not isinstance(name, str):
        return None
    name = name.strip()
    if not name or len(name) > NAME_MAX_LENGTH or has_control_characters(name):
        return None
    return name


def record_refusal(request: Request, view: Any, status_code: int) -> None:
    """Record an error answer to an authenticated caller in the audit log:
    403 as ``auth.forbidden``; any other error of an audited action (a
    view's ``audited_actions``) as that action's failure. Anonymous
    requests (401) are not recorded: logins are, by their own signals.

    Best effort: the answer the caller gets does not depend on the record,
    so a failure to keep it is logged and the answer stands.
    """
    user = getattr(request, "user", None)
    if status_code < 400 or user is None or not user.is_authenticated:
        return
    if status_code == 403:
        action = AuditAction.AUTH_FORBIDDEN
    else:
        audited: dict[str, AuditAction] = getattr(view, "audited_actions", {})
        view_action = getattr(view, "action", None)
        if view_action not in audited:
            return
        action = audited[view_action]
    name = _typed_name(request) if action != AuditAction.AUTH_FORBIDDEN else None
    try:
        services().audit.record_failure(
            action,
            actor=actor_for(request),
            status_code=status_code,
            cluster_id=_cluster_id(view),
            cluster_name=name,
        )
    except Exception:  # the record must not change the answer
        logger.exception("Could not record an audit event, action=%s", action)


def login_actor(username: object, request: HttpRequest | None) -> Actor:
    """The actor of a login attempt: the username as typed (bounded), and
    the address it came from."""
    typed = username if isinstance(username, str) else ""
    typed = "".join(char for char in typed if char.isprintable())[:ACTOR_NAME_MAX_LENGTH]
    return Actor(
        username=typed or "-", source_ip=source_ip(request) if request is not None else None
    )
