"""Who may do what: the registry's roles, as group memberships of the acting
account (docs/product-contract.md §13).

Deny by default: an account in neither group may do nothing; superusers and
the registry itself (background work) may do everything.
"""

from __future__ import annotations

from enum import StrEnum

from clusters.domain.actor import Actor
from clusters.domain.errors import Forbidden


class Permission(StrEnum):
    VIEW = "view"  # list and show clusters, their nodes and history
    OPERATE = "operate"  # register, edit, refresh and deregister clusters
    AUDIT = "audit"  # read the audit log


VIEWERS = "viewers"
OPERATORS = "operators"

# What each group grants; superusers hold every permission, AUDIT only them.
ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    VIEWERS: frozenset({Permission.VIEW}),
    OPERATORS: frozenset({Permission.VIEW, Permission.OPERATE}),
}

_NEEDS = {
    Permission.VIEW: f"membership of {VIEWERS} or {OPERATORS}",
    Permission.OPERATE: f"membership of {OPERATORS}",
    Permission.AUDIT: "a superuser",
}


def needs(permission: Permission) -> str:
    """Who holds ``permission``, for messages: "membership of operators"."""
    return _NEEDS[permission]


def may(actor: Actor, permission: Permission) -> bool:
    if actor.is_superuser or actor.is_system:
        return True
    return any(permission in ROLE_PERMISSIONS.get(group, ()) for group in actor.groups)


def authorize(actor: Actor, permission: Permission, doing: str) -> None:
    """Raise Forbidden unless ``actor`` may; ``doing`` says what was refused,
    e.g. "register clusters"."""
    if not may(actor, permission):
        raise Forbidden(f"{actor.username} may not {doing}: that takes {needs(permission)}")
