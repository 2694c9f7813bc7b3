"""An edit as typed (``EditRequest``) checked against the stored cluster:
only what is given and differs changes, blanks keep, credentials come in
pairs (docs/product-contract.md §9)."""

from __future__ import annotations

import pytest

from clusters.domain import (
    EditRequest,
    PasswordCredentials,
    Secret,
    TokenCredentials,
    ValidationFailed,
    token_owner,
)
from tests.cluster_samples import FINGERPRINT, make_cluster, token_cluster
from tests.conftest import assert_secret_absent

PASSWORD = "new-Pa55-3e9d"


def test_an_empty_edit_changes_nothing():
    edit = EditRequest().validate(make_cluster())
    assert edit.is_empty and not edit.changes_connection


def test_values_equal_to_the_stored_ones_change_nothing():
    cluster = make_cluster()
    edit = EditRequest(
        name=cluster.name,
        api_endpoint="pve1.example.com",  # normalises to the stored endpoint
        username="root@pam",  # the stored user, without a password: the form sent back
        verify_tls=True,
        fingerprint=None,
        token_id="",
        token_secret=None,
        password="",
    ).validate(cluster)
    assert edit.is_empty


def test_a_rename_alone_does_not_touch_the_connection():
    edit = EditRequest(name="  Prod-EU-2  ").validate(make_cluster())
    assert dict(edit.changes) == {"name": "Prod-EU-2"}
    assert not edit.changes_connection


def test_a_case_only_rename_is_a_change():
    assert dict(EditRequest(name="PROD-EU").validate(make_cluster()).changes) == {"name": "PROD-EU"}


@pytest.mark.parametrize(
    ("fields", "changed"),
    [
        ({"api_endpoint": "https://proxy.example.com/pve"}, "api_endpoint"),
        ({"verify_tls": False}, "verify_tls"),
        ({"fingerprint": FINGERPRINT.replace(":", "").lower()}, "fingerprint"),
        ({"username": "admin@pve", "password": PASSWORD}, "credentials"),
        ({"token_id": "root@pam!ci", "token_secret": "s3cret"}, "credentials"),
    ],
)
def test_what_decides_how_the_cluster_is_reached_is_a_connection_change(fields, changed):
    edit = EditRequest(**fields).validate(make_cluster())
    assert set(edit.changes) == {changed}
    assert edit.changes_connection


def test_the_endpoint_is_normalised_and_kept_parsed_for_its_hint():
    edit = EditRequest(api_endpoint="https://proxy.example.com/pve/api2/json").validate(
        make_cluster()
    )
    assert edit.changes["api_endpoint"] == "https://proxy.example.com:443/pve"
    assert edit.endpoint is not None and edit.endpoint.port_implied


@pytest.mark.parametrize("cleared", [None, ""])
def test_fingerprint_null_or_blank_removes_the_pin(cleared):
    cluster = token_cluster()  # pinned
    assert dict(EditRequest(fingerprint=cleared).validate(cluster).changes) == {"fingerprint": None}


def test_a_new_password_for_the_same_user_rotates_it():
    edit = EditRequest(username="root@pam", password=PASSWORD).validate(make_cluster())
    assert edit.changes["credentials"] == PasswordCredentials("root@pam", Secret(PASSWORD))


def test_the_same_password_again_is_no_change():
    cluster = make_cluster()
    same = cluster.credentials.secret.reveal()
    assert EditRequest(username="root@pam", password=same).validate(cluster).is_empty


def test_token_credentials_replace_a_password_and_the_other_way_round():
    to_token = EditRequest(token_id="root@pam!ci", token_secret="tok").validate(make_cluster())
    assert to_token.changes["credentials"] == TokenCredentials("root@pam!ci", Secret("tok"))
    to_password = EditRequest(username="root@pam", password=PASSWORD).validate(token_cluster())
    assert isinstance(to_password.changes["credentials"], PasswordCredentials)


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"password": PASSWORD}, "username", "Username is required with password"),
        ({"token_secret": "tok"}, "token_id", "Token id is required with token secret"),
        ({"username": "admin@pve"}, "password", "Password is required with username"),
        ({"token_id": "root@pam!other"}, "token_secret", "Token secret is required with token id"),
        (
            {"username": "root@pam", "password": PASSWORD, "token_id": "root@pam!x"},
            "*",
            "not both",
        ),
        ({"name": "   "}, "name", "required"),
        ({"api_endpoint": "http://pve1"}, "api_endpoint", "https://"),
        ({"fingerprint": "AB:CD"}, "fingerprint", "64 hex digits"),
        ({"username": "root", "password": PASSWORD}, "username", "realm"),
        ({"create_token": True}, "create_token", "username and password"),
        (
            {"token_id": "root@pam!x", "token_secret": "t", "create_token": True},
            "create_token",
            "username and password",
        ),
    ],
)
def test_bad_edits_name_the_field(fields, field, says):
    with pytest.raises(ValidationFailed) as caught:
        EditRequest(**fields).validate(make_cluster())
    assert field in caught.value.details
    assert any(says in message for message in caught.value.details[field])


def test_the_stored_user_alone_is_not_enough_for_a_token_cluster():
    """The form of a token cluster shows no username; typing one in switches
    the method, which takes its password."""
    with pytest.raises(ValidationFailed) as caught:
        EditRequest(username="root@pam").validate(token_cluster())
    assert "password" in caught.value.details


def test_every_failing_field_is_listed_at_once():
    with pytest.raises(ValidationFailed) as caught:
        EditRequest(name="", api_endpoint="ftp://x", fingerprint="zz").validate(make_cluster())
    assert set(caught.value.details) == {"name", "api_endpoint", "fingerprint"}


def test_create_token_with_the_stored_password_still_hands_off():
    cluster = make_cluster()
    same = cluster.credentials.secret.reveal()
    edit = EditRequest(username="root@pam", password=same, create_token=True).validate(cluster)
    assert edit.create_token and "credentials" in edit.changes


def test_an_edit_requests_repr_hides_the_secrets():
    request = EditRequest(username="root@pam", password=PASSWORD, token_secret="tok-Secret-9")
    assert_secret_absent(PASSWORD, repr(request), "the repr")
    assert_secret_absent("tok-Secret-9", repr(request), "the repr")


def test_a_validation_error_never_repeats_a_secret():
    with pytest.raises(ValidationFailed) as caught:
        EditRequest(password=PASSWORD, token_secret="tok-Secret-9").validate(make_cluster())
    text = f"{caught.value} {caught.value.details}"
    assert_secret_absent(PASSWORD, text, "the error")


def test_token_owner_takes_both_or_neither():
    assert token_owner(None, None) is None
    assert token_owner("", "") is None
    assert token_owner(" root@pam ", PASSWORD) == PasswordCredentials("root@pam", Secret(PASSWORD))
    for username, password, field in [("root@pam", None, "password"), (None, "x", "username")]:
        with pytest.raises(ValidationFailed) as caught:
            token_owner(username, password)
        assert field in caught.value.details
