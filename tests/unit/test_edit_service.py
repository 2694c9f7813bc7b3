"""Editing, renewing trust and the token hand-off as use cases
(docs/product-contract.md §9): ``ClusterService`` composed by ``bootstrap``
with an in-memory repository and a fake Proxmox gateway."""

from __future__ import annotations

import logging
import threading
import uuid

import pytest

from clusters.bootstrap import bootstrap
from clusters.domain import (
    Actor,
    AuditAction,
    ClusterNameTaken,
    ClusterStatus,
    EditRequest,
    Forbidden,
    PasswordCredentials,
    PreconditionFailed,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxNoAnswer,
    ProxmoxPermissionDenied,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    RegistrationRequest,
    Secret,
    StaleCluster,
    TokenCredentials,
    TokenHandOffRefused,
    ValidationFailed,
)
from clusters.repositories.memory import InMemoryClusterRepository, InMemoryUnitOfWork
from tests.cluster_samples import FINGERPRINT
from tests.conftest import assert_secret_absent
from tests.fakes import FakeClock, FakeProxmox
from tests.units_of_work import AutoCommit

PASSWORD = "Pa55-edit-secret-71ab"
NEW_PASSWORD = "Pa55-rotated-secret-0c4e"
TOKEN_SECRET = "tok-edit-secret-5d2f"
OPERATOR = Actor("operator", groups=frozenset({"operators"}), source_ip="127.0.0.1")
VIEWER = Actor("viewer", groups=frozenset({"viewers"}))
OBSERVED = "12:" * 31 + "12"


@pytest.fixture
def repository():
    return InMemoryClusterRepository()


@pytest.fixture
def unit_of_work(repository):
    return InMemoryUnitOfWork.factory(repository)


@pytest.fixture
def proxmox():
    return FakeProxmox()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def ids():
    """Predictable ids: cluster ids and token names can be told from each other."""
    counter = iter(range(1, 1_000))
    return lambda: uuid.UUID(int=next(counter) << 96)


@pytest.fixture
def service(unit_of_work, proxmox, clock, ids):
    return bootstrap(unit_of_work=unit_of_work, proxmox=proxmox, clock=clock, new_id=ids)


@pytest.fixture
def cluster(service, proxmox, clock):
    registered = service.clusters.register(
        RegistrationRequest(
            name="prod", api_endpoint="pve1.example.com", username="root@pam", password=PASSWORD
        ),
        actor=OPERATOR,
    )
    proxmox.calls.clear()
    clock.advance(minutes=1)
    return registered


def edit(service, cluster, *, expected_version=None, **fields):
    return service.clusters.edit(
        cluster.id, EditRequest(**fields), actor=OPERATOR, expected_version=expected_version
    )


def audit_events(unit_of_work, action=AuditAction.CLUSTER_EDIT):
    with unit_of_work() as uow:
        return [event for event in uow.audit.list() if event.action == action]


# -- edits that need no Proxmox -----------------------------------------------------------------


def test_a_rename_alone_makes_no_call_and_moves_the_version(
    service, cluster, proxmox, repository, unit_of_work, clock
):
    renamed = edit(service, cluster, name="prod-eu")

    assert proxmox.calls == []
    assert (renamed.name, renamed.version, renamed.updated_at) == ("prod-eu", 2, clock.now)
    assert repository.find_by_id(cluster.id) == renamed
    assert repository.find_by_name("PROD-EU") == renamed
    [event] = audit_events(unit_of_work)
    assert (event.actor, event.cluster_id, event.status_code) == ("operator", cluster.id, 200)
    assert event.changes == {"name": ["prod", "prod-eu"]}


def test_an_empty_edit_answers_the_cluster_and_stores_nothing(
    service, cluster, proxmox, repository, unit_of_work
):
    unchanged = edit(service, cluster)
    same_values = edit(service, cluster, name="prod", username="root@pam", verify_tls=True)

    assert unchanged == same_values == repository.find_by_id(cluster.id)
    assert unchanged.version == 1
    assert proxmox.calls == []
    assert audit_events(unit_of_work) == []


def test_a_name_held_by_another_cluster_in_any_case_is_taken(service, cluster, proxmox, repository):
    other = service.clusters.register(
        RegistrationRequest(
            name="Lab", api_endpoint="pve2.example.com", username="root@pam", password=PASSWORD
        ),
        actor=OPERATOR,
    )
    proxmox.calls.clear()
    with pytest.raises(ClusterNameTaken):
        edit(service, cluster, name=" LAB ", verify_tls=False)
    assert proxmox.calls == [], "a taken name costs no call at Proxmox"
    assert repository.find_by_id(cluster.id) == cluster
    assert repository.find_by_name("lab") == other


def test_a_cluster_may_take_its_own_name_in_another_case(service, cluster):
    assert edit(service, cluster, name="PROD").name == "PROD"


def test_a_viewer_may_not_edit(service, cluster, repository):
    with pytest.raises(Forbidden):
        service.clusters.edit(cluster.id, EditRequest(name="x"), actor=VIEWER)
    assert repository.find_by_id(cluster.id) == cluster


def test_an_invalid_edit_changes_nothing(service, cluster, repository, proxmox):
    with pytest.raises(ValidationFailed):
        edit(service, cluster, name="ok", api_endpoint="http://pve1.example.com")
    assert repository.find_by_id(cluster.id) == cluster
    assert proxmox.calls == []


# -- If-Match -----------------------------------------------------------------------------------


def test_the_current_version_lets_the_edit_through(service, cluster):
    assert edit(service, cluster, expected_version=1, name="x").version == 2


def test_a_stale_version_is_a_failed_precondition_and_changes_nothing(
    service, cluster, repository, proxmox
):
    edit(service, cluster, name="first")
    with pytest.raises(PreconditionFailed) as caught:
        edit(service, cluster, expected_version=1, verify_tls=False)
    assert (caught.value.expected_version, caught.value.current_version) == (1, 2)
    assert caught.value.details == {"version": 2}
    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.verify_tls, stored.version) == ("first", True, 2)
    assert proxmox.calls == []


def test_a_stale_version_fails_even_an_empty_edit(service, cluster):
    edit(service, cluster, name="first")
    with pytest.raises(PreconditionFailed):
        edit(service, cluster, expected_version=1)


def test_two_edits_racing_with_the_same_version_one_wins_the_other_fails(
    service, cluster, repository, proxmox
):
    """Both read version 1, both prove their change at Proxmox (the slow
    part, outside any unit of work), then both store: exactly one may."""
    racers = 8
    barrier = threading.Barrier(racers)
    proxmox.before_answer = barrier.wait  # every racer is past its read when any stores
    outcomes: list[str] = []

    def racer(number: int) -> None:
        try:
            edit(service, cluster, expected_version=1, fingerprint=f"{number:02X}" * 32)
            outcomes.append("won")
        except PreconditionFailed:
            outcomes.append("412")

    threads = [threading.Thread(target=racer, args=(n,)) for n in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["412"] * (racers - 1) + ["won"]
    assert len(proxmox.calls) == racers, "all passed the precondition: the race was real"
    assert repository.find_by_id(cluster.id).version == 2


def test_without_if_match_a_lost_race_is_stale_not_an_overwrite(
    service, cluster, repository, proxmox, unit_of_work
):
    def someone_else_edits():
        AutoCommit(unit_of_work).update(
            repository.find_by_id(cluster.id).reconfigured(at=cluster.updated_at, name="theirs")
        )

    proxmox.before_answer = someone_else_edits
    with pytest.raises(StaleCluster):
        edit(service, cluster, verify_tls=False)
    stored = repository.find_by_id(cluster.id)
    assert (stored.name, stored.verify_tls) == ("theirs", True)


def test_an_edit_keeps_what_a_check_recorded_meanwhile(
    service, cluster, repository, unit_of_work, clock
):
    read = repository.find_by_id(cluster.id)
    AutoCommit(unit_of_work).record_check(
        read.observed(at=clock.now, status=ClusterStatus.DEGRADED, last_error="pve3 offline")
    )
    renamed = edit(service, read, name="renamed")
    assert (renamed.status, renamed.last_error) == (ClusterStatus.DEGRADED, "pve3 offline")
    assert repository.find_by_id(cluster.id) == renamed


# -- connection changes are proven first --------------------------------------------------------


def test_a_rotated_password_is_proven_then_stored_with_fresh_findings(
    service, cluster, proxmox, repository, unit_of_work, clock
):
    edited = edit(service, cluster, username="root@pam", password=NEW_PASSWORD)

    [(target, credentials)] = proxmox.calls
    assert credentials == PasswordCredentials("root@pam", Secret(NEW_PASSWORD))
    assert target.api_endpoint == cluster.api_endpoint
    assert edited.credentials == credentials and edited.version == 2
    assert (edited.status, edited.last_checked_at, edited.last_error) == (
        ClusterStatus.HEALTHY,
        clock.now,
        None,
    )
    assert repository.find_by_id(cluster.id) == edited
    [event] = audit_events(unit_of_work)
    assert event.changes == {"password": "changed"}


@pytest.mark.parametrize(
    "error",
    [
        ProxmoxAuthenticationFailed("Proxmox refused the credentials of root@pam"),
        ProxmoxUnreachable("Could not connect to https://pve2.example.com:8006"),
        ProxmoxTLSError("The certificate is not trusted", details={"fingerprint": OBSERVED}),
        ProxmoxBadResponse("answered /version with 500"),
    ],
    ids=["refused", "unreachable", "untrusted", "bad-response"],
)
def test_a_connection_change_that_fails_at_proxmox_changes_nothing(
    service, cluster, proxmox, repository, unit_of_work, error
):
    proxmox.error = error
    with pytest.raises(type(error)):
        edit(
            service,
            cluster,
            name="renamed-too",
            api_endpoint="pve2.example.com",
            username="root@pam",
            password=NEW_PASSWORD,
        )
    assert repository.find_by_id(cluster.id) == cluster
    assert audit_events(unit_of_work) == []


def test_switching_to_a_token_forgets_the_password(service, cluster, repository, unit_of_work):
    edited = edit(service, cluster, token_id="root@pam!ci", token_secret=TOKEN_SECRET)

    stored = repository.find_by_id(cluster.id)
    assert stored.credentials == TokenCredentials("root@pam!ci", Secret(TOKEN_SECRET))
    assert (stored.auth_method, stored.username, stored.token_id) == ("token", None, "root@pam!ci")
    assert stored == edited
    [event] = audit_events(unit_of_work)
    assert event.changes == {
        "auth_method": ["password", "token"],
        "username": ["root@pam", None],
        "password": "changed",
        "token_id": [None, "root@pam!ci"],
        "token_secret": "changed",
    }
    assert_secret_absent(PASSWORD, repr(stored), "the stored cluster")


def test_switching_back_to_a_password_forgets_the_token(service, cluster, repository):
    edit(service, cluster, token_id="root@pam!ci", token_secret=TOKEN_SECRET)
    back = edit(service, cluster, username="admin@pve", password=NEW_PASSWORD)
    assert back.credentials == PasswordCredentials("admin@pve", Secret(NEW_PASSWORD))
    assert back.version == 3


def test_fingerprint_none_removes_the_pin_once_proven(service, cluster, proxmox):
    pinned = edit(service, cluster, fingerprint=FINGERPRINT)
    unpinned = edit(service, pinned, fingerprint=None)
    assert (pinned.fingerprint, unpinned.fingerprint) == (FINGERPRINT, None)
    assert [target.fingerprint for target, _ in proxmox.calls] == [FINGERPRINT, None]


def test_a_connection_change_is_proven_with_the_whole_new_configuration(service, cluster, proxmox):
    edit(service, cluster, api_endpoint="https://proxy.example.com/pve", verify_tls=False)
    [(target, credentials)] = proxmox.calls
    assert (target.api_endpoint, target.verify_tls) == ("https://proxy.example.com:443/pve", False)
    assert credentials == cluster.credentials


def test_no_log_line_or_audit_event_carries_an_old_or_new_secret(
    service, cluster, proxmox, unit_of_work, caplog
):
    with caplog.at_level(logging.DEBUG):
        edit(service, cluster, username="root@pam", password=NEW_PASSWORD)
        edit(
            service, cluster, expected_version=2, token_id="root@pam!ci", token_secret=TOKEN_SECRET
        )
        proxmox.error = ProxmoxAuthenticationFailed("refused")
        with pytest.raises(ProxmoxAuthenticationFailed):
            edit(service, cluster, username="root@pam", password="Wrong-Pa55-aa")
    text = " ".join(r.getMessage() for r in caplog.records) + repr(audit_events(unit_of_work))
    for secret in (PASSWORD, NEW_PASSWORD, TOKEN_SECRET, "Wrong-Pa55-aa"):
        assert_secret_absent(secret, text, "the log or the audit record")
    assert "Cluster edited, cluster_id=" in text


# -- an implied 443 that does not answer --------------------------------------------------------


def test_nothing_answering_on_an_implied_443_suggests_8006(service, proxmox):
    proxmox.error = ProxmoxNoAnswer(
        "Could not connect to https://pve1.example.com:443: connection refused"
    )
    with pytest.raises(ProxmoxNoAnswer) as caught:
        service.clusters.register(
            RegistrationRequest(
                name="p",
                api_endpoint="https://pve1.example.com",
                token_id="ci@pam!ci",
                token_secret="c",
            ),
            actor=OPERATOR,
        )
    assert "try https://pve1.example.com:8006" in caught.value.message
    assert caught.value.details == {"suggested_endpoint": "https://pve1.example.com:8006"}


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("https://pve1.example.com:443", ProxmoxNoAnswer("refused")),
        ("pve1.example.com", ProxmoxNoAnswer("refused")),
        ("https://pve1.example.com", ProxmoxUnreachable("host name could not be resolved")),
    ],
)
def test_no_hint_where_443_was_typed_or_something_else_failed(service, proxmox, typed, error):
    proxmox.error = error
    with pytest.raises(ProxmoxUnreachable) as caught:
        service.clusters.register(
            RegistrationRequest(
                name="p", api_endpoint=typed, token_id="ci@pam!ci", token_secret="c"
            ),
            actor=OPERATOR,
        )
    assert "8006" not in caught.value.message


def test_an_edit_to_an_implied_443_gets_the_hint_too(service, cluster, proxmox):
    proxmox.error = ProxmoxNoAnswer("Could not connect: connection refused")
    with pytest.raises(ProxmoxNoAnswer, match="try https://pve9.example.com:8006"):
        edit(service, cluster, api_endpoint="https://pve9.example.com")


# -- trust renewal ------------------------------------------------------------------------------


def test_a_pin_mismatch_turns_the_cluster_unhealthy_with_the_fingerprint_to_renew(
    service, cluster, proxmox
):
    pinned = edit(service, cluster, fingerprint=FINGERPRINT)
    proxmox.error = ProxmoxTLSError(
        f"does not match the pinned fingerprint: expected {FINGERPRINT}, got {OBSERVED}",
        details={"expected_fingerprint": FINGERPRINT, "fingerprint": OBSERVED},
    )
    checked = service.checks.refresh(pinned.id, actor=OPERATOR)
    assert checked.status is ClusterStatus.UNHEALTHY
    assert FINGERPRINT in checked.last_error and OBSERVED in checked.last_error
    assert checked.last_error_details == {"fingerprint": OBSERVED}
    assert checked.version == 2

    proxmox.error = None
    renewed = edit(service, checked, expected_version=2, fingerprint=OBSERVED)
    assert (renewed.status, renewed.fingerprint, renewed.version) == (
        ClusterStatus.HEALTHY,
        OBSERVED,
        3,
    )
    assert (renewed.last_error, renewed.last_error_details) == (None, None)


def test_a_good_check_clears_the_details_and_other_failures_carry_none(service, cluster, proxmox):
    proxmox.error = ProxmoxTLSError("untrusted", details={"fingerprint": OBSERVED})
    assert service.checks.refresh(cluster.id, actor=OPERATOR).last_error_details == {
        "fingerprint": OBSERVED
    }
    proxmox.error = ProxmoxUnreachable("down")
    assert service.checks.refresh(cluster.id, actor=OPERATOR).last_error_details is None
    proxmox.error = ProxmoxTLSError("untrusted", details={"fingerprint": OBSERVED})
    service.checks.refresh(cluster.id, actor=OPERATOR)
    proxmox.error = None
    healed = service.checks.refresh(cluster.id, actor=OPERATOR)
    assert (healed.last_error, healed.last_error_details) == (None, None)


# -- token hand-off -----------------------------------------------------------------------------


def hand_off_request(**fields):
    return RegistrationRequest(
        **{
            "name": "handed-off",
            "api_endpoint": "pve1.example.com",
            "username": "root@pam",
            "password": PASSWORD,
            "create_token": True,
            **fields,
        }
    )


def test_registering_with_create_token_keeps_only_the_token(
    service, proxmox, repository, unit_of_work
):
    cluster = service.clusters.register(hand_off_request(), actor=OPERATOR)

    token_id = f"root@pam!proxmoxer-{uuid.UUID(int=2 << 96).hex[:8]}"
    assert proxmox.token_calls == [("issue", "root@pam", token_id)]
    [(_, verified_with)] = proxmox.calls
    assert verified_with == proxmox.tokens[token_id], "the token is proven, not the password"
    stored = repository.find_by_id(cluster.id)
    assert stored.credentials == proxmox.tokens[token_id]
    assert stored.credentials.created_by_registry
    assert (stored.auth_method, stored.token_id, stored.username) == ("token", token_id, None)
    assert_secret_absent(PASSWORD, repr(stored), "the stored cluster")
    [event] = audit_events(unit_of_work, AuditAction.CLUSTER_REGISTER)
    assert "password" not in event.changes
    assert event.changes["token_id"] == [None, token_id]


def test_a_refused_hand_off_stores_nothing(service, proxmox, repository):
    proxmox.issue_error = TokenHandOffRefused("Proxmox refused … Permissions.Modify")
    with pytest.raises(TokenHandOffRefused):
        service.clusters.register(hand_off_request(), actor=OPERATOR)
    assert list(repository.list()) == []
    assert proxmox.calls == [] and proxmox.tokens == {}


def test_a_token_that_does_not_work_is_deleted_again_with_the_password(
    service, proxmox, repository
):
    proxmox.errors_for = {
        f"root@pam!proxmoxer-{uuid.UUID(int=2 << 96).hex[:8]}": ProxmoxAuthenticationFailed(
            "Proxmox refused the credentials of the token"
        )
    }
    with pytest.raises(ProxmoxAuthenticationFailed):
        service.clusters.register(hand_off_request(), actor=OPERATOR)
    assert [call[:2] for call in proxmox.token_calls] == [
        ("issue", "root@pam"),
        ("delete", "root@pam"),
    ]
    assert proxmox.tokens == {}
    assert list(repository.list()) == []


def test_a_hand_off_that_cannot_be_stored_takes_its_token_back(service, proxmox, repository):
    """The name was free when the registration began; a racing one took it
    while the token was being made."""
    service.clusters.register(
        RegistrationRequest(
            name="other", api_endpoint="x.example.com", token_id="ci@pam!ci", token_secret="c"
        ),
        actor=OPERATOR,
    )

    def take_the_name():
        proxmox.before_answer = None
        service.clusters.register(
            RegistrationRequest(
                name="HANDED-OFF",
                api_endpoint="y.example.com",
                token_id="ci@pam!ci",
                token_secret="c",
            ),
            actor=OPERATOR,
        )

    proxmox.before_answer = take_the_name
    with pytest.raises(ClusterNameTaken):
        service.clusters.register(hand_off_request(), actor=OPERATOR)
    assert proxmox.tokens == {}
    assert repository.find_by_name("handed-off").api_endpoint == "https://y.example.com:8006"


def test_create_token_in_an_edit_replaces_the_password_with_a_token(
    service, cluster, proxmox, repository, unit_of_work
):
    edited = edit(service, cluster, username="root@pam", password=PASSWORD, create_token=True)
    assert edited.credentials.created_by_registry
    assert repository.find_by_id(cluster.id).credentials == edited.credentials
    [event] = audit_events(unit_of_work)
    assert event.changes["password"] == "changed"
    assert event.changes["auth_method"] == ["password", "token"]


def test_a_second_hand_off_deletes_the_first_token_with_the_password(service, cluster, proxmox):
    first = edit(service, cluster, username="root@pam", password=PASSWORD, create_token=True)
    second = edit(service, first, username="root@pam", password=PASSWORD, create_token=True)
    assert first.token_id != second.token_id
    assert list(proxmox.tokens) == [second.token_id]
    assert proxmox.token_calls[-1] == ("delete", "root@pam", first.token_id)


def test_replacing_a_registry_token_with_a_password_deletes_it_with_that_password(
    service, cluster, proxmox
):
    handed = edit(service, cluster, username="root@pam", password=PASSWORD, create_token=True)
    edit(service, handed, username="root@pam", password=NEW_PASSWORD)
    assert proxmox.tokens == {}
    assert proxmox.token_calls[-1] == ("delete", "root@pam", handed.token_id)


def test_a_failed_hand_off_in_an_edit_changes_nothing(service, cluster, proxmox, repository):
    proxmox.issue_error = TokenHandOffRefused("refused")
    with pytest.raises(TokenHandOffRefused):
        edit(service, cluster, username="root@pam", password=PASSWORD, create_token=True)
    assert repository.find_by_id(cluster.id) == cluster


# -- deregistering deletes the registry's token, best effort ------------------------------------


def test_deregistering_deletes_the_token_with_the_owners_password(
    service, proxmox, repository, unit_of_work
):
    cluster = service.clusters.register(hand_off_request(), actor=OPERATOR)
    service.clusters.deregister(
        cluster.id,
        actor=OPERATOR,
        token_owner=PasswordCredentials("root@pam", Secret(PASSWORD)),
    )
    assert proxmox.tokens == {}
    assert proxmox.token_calls[-1] == ("delete", "root@pam", cluster.token_id)
    assert not repository.exists(cluster.id)
    [event] = audit_events(unit_of_work, AuditAction.CLUSTER_DEREGISTER)
    assert event.changes["cluster_token"] == [cluster.token_id, "deleted"]


def test_without_a_password_the_token_is_tried_and_its_refusal_recorded(
    service, proxmox, repository, unit_of_work, caplog
):
    cluster = service.clusters.register(hand_off_request(), actor=OPERATOR)
    proxmox.delete_error = ProxmoxPermissionDenied(
        "may not change", reason="Permission check failed"
    )
    with caplog.at_level(logging.WARNING, logger="clusters"):
        service.clusters.deregister(cluster.id, actor=OPERATOR)

    assert proxmox.token_calls[-1] == ("delete", cluster.token_id, cluster.token_id)
    assert not repository.exists(cluster.id), "a token left behind never blocks deregistering"
    [event] = audit_events(unit_of_work, AuditAction.CLUSTER_DEREGISTER)
    token_id, outcome = event.changes["cluster_token"]
    assert token_id == cluster.token_id
    assert outcome.startswith("left on the cluster: PVE does not let an API token delete itself")
    assert f"pveum user token remove root@pam {cluster.token_id.split('!')[1]}" in outcome
    assert "Proxmox API token not deleted" in caplog.text


def test_an_unreachable_cluster_does_not_block_deregistering(service, proxmox, repository):
    cluster = service.clusters.register(hand_off_request(), actor=OPERATOR)
    proxmox.delete_error = ProxmoxUnreachable("Could not connect")
    service.clusters.deregister(
        cluster.id, actor=OPERATOR, token_owner=PasswordCredentials("root@pam", Secret(PASSWORD))
    )
    assert not repository.exists(cluster.id)


def test_a_token_the_operator_brought_is_never_deleted(service, proxmox, unit_of_work):
    cluster = service.clusters.register(
        RegistrationRequest(
            name="own", api_endpoint="pve1.example.com", token_id="root@pam!mine", token_secret="x"
        ),
        actor=OPERATOR,
    )
    service.clusters.deregister(cluster.id, actor=OPERATOR)
    assert proxmox.token_calls == []
    [event] = audit_events(unit_of_work, AuditAction.CLUSTER_DEREGISTER)
    assert "cluster_token" not in event.changes
