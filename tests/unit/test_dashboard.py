"""The dashboard's parts that need no request: how clusters and the sections
other parts of the registry fill in are presented, the number filters, the
forms, and the change waiting for a certificate to be trusted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.sessions.backends.signed_cookies import SessionStore

from clusters.domain import (
    ClusterNameTaken,
    ClusterStatus,
    EndpointHealth,
    NodeEndpoint,
    ProxmoxAuthenticationFailed,
    ProxmoxPermissionDenied,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    TokenHandOffRefused,
    ValidationFailed,
)
from dashboard import pending
from dashboard.forms import (
    EditForm,
    RegisterForm,
    edit_request,
    registration_request,
    untrusted_fingerprint,
)
from dashboard.presenters import (
    ClusterRow,
    HistoryLine,
    NodeLine,
    endpoints_of,
    section,
    status_badge,
)
from dashboard.templatetags.dashboard import breakable, percent, uptime
from tests.cluster_samples import FINGERPRINT, make_cluster
from tests.conftest import assert_secret_absent

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SECRET = "Pa55-waiting-secret-3d4e"


# -- presenting clusters -------------------------------------------------------------------------


def test_every_status_has_a_colour_class_a_symbol_and_a_word():
    for status in ClusterStatus:
        badge = status_badge(status)
        assert badge.value == status.value
        assert badge.symbol and badge.label == status.value.capitalize() and badge.meaning


def test_a_status_the_dashboard_does_not_know_shows_as_unknown():
    assert status_badge("exploded").value == "unknown"


def test_a_row_reads_a_cluster_and_a_listed_cluster_alike():
    cluster = make_cluster("lab", status=ClusterStatus.DEGRADED, last_error="pve3 offline")
    listed = {
        "id": cluster.id,
        "name": "lab",
        "status": "degraded",
        "proxmox_version": "8.2.4",
        "node_count": 3,
        "nodes_online": 2,
        "api_endpoint": cluster.api_endpoint,
        "last_checked_at": "2026-11-28T12:00:00.5Z",
        "last_error": "pve3 offline",
    }

    from_object, from_mapping = ClusterRow.of(cluster), ClusterRow.of(listed)

    assert from_object.status == from_mapping.status == status_badge("degraded")
    assert (from_object.name, from_object.last_error) == ("lab", "pve3 offline")
    assert from_object.nodes_online == cluster.nodes_online
    assert from_mapping.nodes_online == 2
    assert from_mapping.last_checked_at == NOW + timedelta(microseconds=500_000)


def test_endpoints_are_the_registered_one_until_others_are_known():
    cluster = make_cluster("lab", fingerprint=FINGERPRINT)

    (only,) = endpoints_of(cluster)

    assert (only.url, only.fingerprint, only.node, only.last_ok_at) == (
        cluster.api_endpoint,
        FINGERPRINT,
        None,
        None,
    )


def test_a_clusters_learned_endpoints_follow_the_registered_one_with_their_last_answers():
    learned = NodeEndpoint("https://127.0.0.2:8006", "pve2", FINGERPRINT)
    cluster = make_cluster(
        "lab",
        registered_node="pve1",
        endpoints=(learned,),
        endpoint_health={learned.url: EndpointHealth(last_ok_at=NOW)},
    )

    lines = endpoints_of(cluster)

    assert [(line.url, line.node, line.fingerprint, line.last_ok_at) for line in lines] == [
        (cluster.api_endpoint, "pve1", None, None),
        (learned.url, "pve2", FINGERPRINT, NOW),
    ]


def test_endpoints_light_up_with_the_contracts_fields():
    listed = {
        "api_endpoint": "https://127.0.0.1:8006",
        "fingerprint": None,
        "endpoints": [
            {"url": "https://127.0.0.1:8006", "node": "pve1", "fingerprint": FINGERPRINT},
            {"url": "https://127.0.0.2:8006", "node": "pve2", "last_ok_at": NOW},
        ],
    }

    lines = endpoints_of(listed)

    assert [(line.url, line.node) for line in lines] == [
        ("https://127.0.0.1:8006", "pve1"),
        ("https://127.0.0.2:8006", "pve2"),
    ]
    assert lines[1].last_ok_at == NOW


def test_nodes_and_history_are_not_known_until_a_use_case_gives_them():
    assert not section(None, NodeLine).known
    assert section([], NodeLine).known and section([], NodeLine).lines == []


def test_nodes_light_up_with_the_contracts_fields():
    nodes = section(
        [
            {
                "name": "pve1",
                "status": "online",
                "ip": "127.0.1.1",
                "ssl_fingerprint": FINGERPRINT,
                "cpu": 0.25,
                "maxcpu": 8,
                "mem": 4 << 30,
                "maxmem": 16 << 30,
                "uptime": 90_061,
            },
            {"name": "pve3", "status": "offline", "ip": "127.0.1.3"},
        ],
        NodeLine,
        checked_at=NOW,
    )

    online, offline = nodes.lines
    assert (online.name, online.cpu, online.memory_fraction) == ("pve1", 0.25, 0.25)
    assert (offline.status, offline.cpu, offline.memory_fraction) == ("offline", None, None)
    assert nodes.checked_at == NOW


def test_history_lights_up_with_the_contracts_fields():
    history = section(
        [
            {"at": NOW, "from": "healthy", "to": "degraded", "reason": "pve3 offline"},
            {"at": NOW - timedelta(days=1), "from": None, "to": "healthy", "reason": None},
        ],
        HistoryLine,
    )

    change, first = history.lines
    assert (change.from_status.value, change.to_status.value) == ("healthy", "degraded")
    assert change.reason == "pve3 offline"
    assert (first.from_status, first.to_status.value) == (None, "healthy")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "—"),
        (0, "0 s"),
        (59, "59 s"),
        (300, "5 min"),
        (3_660, "1 h 1 min"),
        (90_061, "1 d 1 h"),
    ],
)
def test_uptime_shows_its_two_largest_units(seconds, shown):
    assert uptime(seconds) == shown


def test_a_fingerprint_may_wrap_after_its_colons_only():
    assert breakable("AB:CD:EF") == "AB:<wbr>CD:<wbr>EF"
    assert breakable("<b>:x") == "&lt;b&gt;:<wbr>x"


def test_percent_rounds_and_says_nothing_for_the_unknown():
    assert (percent(0.256), percent(None)) == ("26 %", "—")


# -- the register form ---------------------------------------------------------------------------


def bound_form(**fields) -> RegisterForm:
    data = {
        "name": "lab",
        "api_endpoint": "pve1",
        "auth_method": "password",
        "username": "root@pam",
        "password": SECRET,
        **fields,
    }
    form = RegisterForm(data)
    assert form.is_valid(), form.errors
    return form


def test_what_was_typed_is_kept_without_the_secret_and_only_for_the_chosen_method():
    form = bound_form(token_id="root@pam!stray", token_secret="stray-secret")

    typed = form.typed()

    assert typed == {
        "name": "lab",
        "api_endpoint": "pve1",
        "auth_method": "password",
        "username": "root@pam",
        "create_token": False,
        "verify_tls": False,
        "fingerprint": "",
    }
    request = registration_request(typed, form.secret_typed())
    assert (request.username, request.password, request.token_id) == ("root@pam", SECRET, None)


@pytest.mark.parametrize(
    ("error", "field"),
    [
        (ValidationFailed({"username": ["Username must include its realm"]}), "username"),
        (ValidationFailed({ValidationFailed.WHOLE_REQUEST: ["Credentials are required"]}), None),
        (ClusterNameTaken("lab"), "name"),
        (ProxmoxAuthenticationFailed("Proxmox refused the credentials"), "password"),
        (ProxmoxUnreachable("pve1 did not answer"), "api_endpoint"),
        (ProxmoxTLSError("TLS handshake with pve1 failed"), "api_endpoint"),
        (
            ProxmoxTLSError(
                "does not match", details={"expected_fingerprint": "A", "fingerprint": "B"}
            ),
            "fingerprint",
        ),
        (ProxmoxPermissionDenied("may not read /nodes"), None),
        (TokenHandOffRefused("Proxmox refused to create the token"), "create_token"),
    ],
)
def test_each_error_is_shown_beside_the_field_it_is_about(error, field):
    form = bound_form()

    form.show(error)

    assert form.errors == {field or "__all__": [error.message]}


def test_the_edit_form_shows_the_configuration_and_never_a_secret():
    cluster = make_cluster("lab", fingerprint=FINGERPRINT, version=4)

    form = EditForm.of(cluster)

    assert form.initial == {
        "name": "lab",
        "api_endpoint": cluster.api_endpoint,
        "auth_method": "password",
        "username": "root@pam",
        "verify_tls": True,
        "fingerprint": FINGERPRINT,
        "version": 4,
    }
    assert_secret_absent("hunter2-Ünïcode", str(form), "the edit form")


def test_an_edit_sent_back_unchanged_changes_nothing():
    cluster = make_cluster("lab", fingerprint=FINGERPRINT)
    form = EditForm({**EditForm.of(cluster).initial, "verify_tls": "on"})
    assert form.is_valid(), form.errors

    edit = edit_request(form.typed(), form.secret_typed() or None).validate(cluster)

    assert edit.is_empty


def test_an_edit_switching_to_a_token_gives_the_token_and_an_emptied_pin_clears_it():
    cluster = make_cluster("lab", fingerprint=FINGERPRINT)
    data = {
        **EditForm.of(cluster).initial,
        "auth_method": "token",
        "token_id": "root@pam!new",
        "token_secret": "new-token-secret",
        "fingerprint": "",
    }
    form = EditForm(data)
    assert form.is_valid(), form.errors

    edit = edit_request(form.typed(), form.secret_typed()).validate(cluster)

    assert set(edit.changes) == {"credentials", "fingerprint"}
    assert edit.changes["credentials"].token_id == "root@pam!new"
    assert edit.changes["fingerprint"] is None


def test_only_a_certificate_nothing_vouched_for_is_offered_for_trust():
    untrusted = ProxmoxTLSError("not trusted", details={"fingerprint": FINGERPRINT})
    mismatch = ProxmoxTLSError(
        "does not match", details={"expected_fingerprint": "AA", "fingerprint": FINGERPRINT}
    )

    assert untrusted_fingerprint(untrusted) == FINGERPRINT
    assert untrusted_fingerprint(mismatch) is None
    assert untrusted_fingerprint(ProxmoxTLSError("TLS handshake failed")) is None
    assert untrusted_fingerprint(ProxmoxUnreachable("no answer")) is None


# -- a change waiting for trust -----------------------------------------------------------------


def waiting(session, purpose: str = "register", secret: str | None = SECRET) -> str:
    return pending.keep(
        session,
        purpose=purpose,
        typed={"name": "lab", "auth_method": "password", "username": "root@pam"},
        secret=secret,
        fingerprint=FINGERPRINT,
        now=NOW,
    )


def test_a_waiting_change_is_taken_once_with_its_secret():
    session = SessionStore()
    handle = waiting(session)

    taken = pending.take(session, handle, purpose="register", now=NOW + timedelta(minutes=9))

    assert taken is not None and not taken.expired
    assert (taken.secret, taken.fingerprint, taken.typed["name"]) == (SECRET, FINGERPRINT, "lab")
    assert pending.take(session, handle, purpose="register", now=NOW) is None


def test_the_session_holds_the_secret_encrypted_and_the_page_a_random_handle():
    session = SessionStore()
    handle = waiting(session)

    assert_secret_absent(SECRET, repr(session[pending.SESSION_KEY]), "the session")
    assert SECRET not in handle and len(handle) >= 32


def test_a_change_without_a_secret_waits_without_one():
    session = SessionStore()
    handle = waiting(session, secret=None)

    taken = pending.take(session, handle, purpose="register", now=NOW)

    assert taken is not None and taken.secret is None and not taken.expired


def test_a_change_waiting_too_long_comes_back_expired_without_its_secret():
    session = SessionStore()
    handle = waiting(session)

    later = NOW + pending.LIFETIME + timedelta(seconds=1)
    taken = pending.take(session, handle, purpose="register", now=later)

    assert taken is not None and taken.expired and taken.secret is None
    assert taken.typed["name"] == "lab"


def test_another_handle_or_purpose_takes_nothing_and_leaves_the_change_waiting():
    session = SessionStore()
    handle = waiting(session, purpose="edit:1")

    assert pending.take(session, uuid.uuid4().hex, purpose="edit:1", now=NOW) is None
    assert pending.take(session, handle, purpose="edit:2", now=NOW) is None
    assert pending.take(session, handle, purpose="register", now=NOW) is None
    assert pending.take(session, handle, purpose="edit:1", now=NOW) is not None


def test_a_new_untrusted_answer_replaces_the_one_waiting():
    session = SessionStore()
    first = waiting(session)
    second = waiting(session)

    assert pending.take(session, first, purpose="register", now=NOW) is None
    assert pending.take(session, second, purpose="register", now=NOW) is not None
