"""Accounts in each role of docs/product-contract.md §13, and API clients
acting as them: the permission matrix and the audit tests share these."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from clusters.domain import OPERATORS, VIEWERS
from tests.conftest import with_role

ROLES = ("anonymous", "no_role", "viewer", "operator", "superuser")


def account(role: str) -> Any:
    """A user in ``role`` (None for anonymous), named after it; the same
    one when asked again."""
    if role == "anonymous":
        return None
    users = get_user_model().objects
    username = role.replace("_", "-")
    existing = users.filter(username=username).first()
    if existing is not None:
        return existing
    if role == "superuser":
        return users.create_superuser(username, password=f"{username}-login-pw")
    user = users.create_user(username, password=f"{username}-login-pw")
    if role == "viewer":
        with_role(user, VIEWERS)
    elif role == "operator":
        with_role(user, OPERATORS)
    return user


def client_for(role: str) -> APIClient:
    """An API client authenticated as a new account in ``role``."""
    client = APIClient()
    user = account(role)
    if user is not None:
        client.force_authenticate(user)
    return client
