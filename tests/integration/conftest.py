"""Fixtures for tests that go through the HTTP stack (APIClient) and mock
Proxmox at the transport (requests-mock)."""

from __future__ import annotations

import pytest
import requests_mock
from django.core.cache import cache
from rest_framework.test import APIClient

from clusters.domain import OPERATORS
from tests import pve_responses as pve
from tests.conftest import with_role


@pytest.fixture(autouse=True)
def _empty_cache():
    """Throttling counts requests in the cache; each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user(django_user_model):
    return with_role(
        django_user_model.objects.create_user("operator", password="operator-login-pw"),
        OPERATORS,
    )


@pytest.fixture
def api_client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def anonymous_client():
    return APIClient()


@pytest.fixture
def pve_api():
    with requests_mock.Mocker() as mocker:
        pve.nodes_refuse_connections(mocker)
        yield mocker


@pytest.fixture
def healthy_pve(pve_api):
    pve.healthy_cluster(pve_api)
    return pve_api
