"""Who acts, as the API tells the use cases: the account behind the
request, its groups, where it came from."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from clusters.domain import Actor
from clusters.views import actor_for

pytestmark = pytest.mark.django_db


class _Probe(APIView):
    actor: Actor

    def get(self, request: Any) -> Any:
        from rest_framework.response import Response

        _Probe.actor = actor_for(request)
        return Response({})


def _actor(user: Any) -> Actor:
    request = APIRequestFactory().get("/", REMOTE_ADDR="127.0.0.5")
    force_authenticate(request, user)
    assert _Probe.as_view()(request).status_code == 200
    return _Probe.actor


def test_the_actor_carries_the_users_groups_and_only_theirs(django_user_model: Any) -> None:
    viewers, operators, _ = (
        Group.objects.get_or_create(name=name)[0] for name in ("viewers", "operators", "x")
    )
    alice = django_user_model.objects.create_user("alice")
    alice.groups.add(viewers, operators)
    bob = django_user_model.objects.create_user("bob")
    bob.groups.add(Group.objects.get(name="x"))

    actor = _actor(alice)

    assert actor == Actor(
        "alice", groups=frozenset({"viewers", "operators"}), source_ip="127.0.0.5"
    )
    assert _actor(bob).groups == frozenset({"x"})


def test_a_user_in_no_group_acts_with_none(django_user_model: Any) -> None:
    root = django_user_model.objects.create_superuser("root")

    actor = _actor(root)

    assert (actor.username, actor.is_superuser, actor.groups) == ("root", True, frozenset())
