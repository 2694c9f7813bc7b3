"""Browser logins (docs/product-contract.md §13): throttled per username and
address by django-axes at /api-auth/login/ and /admin/login/, and every
login and failed login in the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.db.models import F
from django.test import Client

from clusters.domain import AuditAction, Outcome
from tests.conftest import assert_secret_absent

pytestmark = pytest.mark.django_db

PAGES = ["/api-auth/login/", "/admin/login/"]
PASSWORD = "right-Pa55word-7c1e"
WRONG = "wrong-Pa55word-0000"


@pytest.fixture
def admin_account(django_user_model):
    return django_user_model.objects.create_superuser("alice", password=PASSWORD)


def attempt(page: str, password: str, *, username: str = "alice", address: str = "127.0.0.1"):
    """One login through the page's form, from ``address``; the client."""
    client = Client(REMOTE_ADDR=address)
    response = client.post(page, {"username": username, "password": password})
    return response, client


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def events(unit_of_work):
    return list(reversed(unit_of_work().audit.list()))  # oldest first


@pytest.mark.parametrize("page", PAGES)
def test_a_login_is_recorded_with_the_address_it_came_from(page, admin_account, unit_of_work):
    response, client = attempt(page, PASSWORD, address="127.0.0.5")

    assert response.status_code == 302 and logged_in(client)
    [event] = events(unit_of_work)
    assert (event.action, event.outcome, event.status_code) == (
        AuditAction.AUTH_LOGIN,
        Outcome.SUCCESS,
        200,
    )
    assert (event.actor, event.source_ip) == ("alice", "127.0.0.5")


@pytest.mark.parametrize("page", PAGES)
def test_five_failures_lock_out_the_username_from_that_address_even_for_the_right_password(
    page, admin_account, unit_of_work
):
    answers = [attempt(page, WRONG)[0].status_code for _ in range(5)]

    response, client = attempt(page, PASSWORD)

    assert answers == [200, 200, 200, 200, 429]
    assert response.status_code == 429
    assert not logged_in(client)
    recorded = events(unit_of_work)
    assert [event.action for event in recorded] == [AuditAction.AUTH_LOGIN_FAILED] * 6
    assert [event.status_code for event in recorded] == [200, 200, 200, 200, 429, 429]
    assert {(event.actor, event.source_ip, event.outcome) for event in recorded} == {
        ("alice", "127.0.0.1", Outcome.FAILURE)
    }
    for password in (PASSWORD, WRONG):
        assert_secret_absent(password, repr(recorded), "the login events")


@pytest.mark.parametrize("page", PAGES)
def test_the_lockout_holds_one_username_at_one_address_only(page, admin_account, django_user_model):
    django_user_model.objects.create_superuser("bob", password=PASSWORD)
    for _ in range(5):
        attempt(page, WRONG)

    assert attempt(page, PASSWORD)[0].status_code == 429
    elsewhere, client = attempt(page, PASSWORD, address="127.0.0.2")
    assert elsewhere.status_code == 302 and logged_in(client)
    other_user, client = attempt(page, PASSWORD, username="bob")
    assert other_user.status_code == 302 and logged_in(client)


@pytest.mark.parametrize("page", PAGES)
def test_the_lockout_ends_after_fifteen_minutes(page, admin_account):
    for _ in range(5):
        attempt(page, WRONG)

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=14))
    assert attempt(page, PASSWORD)[0].status_code == 429, "still within the window"

    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=16))
    response, client = attempt(page, PASSWORD)
    assert response.status_code == 302 and logged_in(client)


@pytest.mark.parametrize("page", PAGES)
def test_fewer_than_five_failures_then_the_right_password_logs_in_and_starts_afresh(
    page, admin_account
):
    for _ in range(4):
        attempt(page, WRONG)
    assert attempt(page, PASSWORD)[0].status_code == 302

    answers = [attempt(page, WRONG)[0].status_code for _ in range(4)]
    assert answers == [200] * 4, "a success forgot the earlier failures"


def test_an_unknown_username_is_counted_and_recorded_as_typed(unit_of_work):
    answers = [attempt(PAGES[0], WRONG, username="nobody\u202e")[0].status_code for _ in range(5)]

    assert answers[-1] == 429
    assert {event.actor for event in events(unit_of_work)} == {"nobody"}, "printable only"


def test_a_login_without_a_request_is_not_throttled_nor_refused(admin_account):
    """Django's test client logs in without a request: nothing to count by."""
    client = Client()
    for _ in range(6):
        assert not client.login(username="alice", password=WRONG)
    assert client.login(username="alice", password=PASSWORD)
    assert not AccessAttempt.objects.exists()
