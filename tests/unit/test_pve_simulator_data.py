"""The simulator's certificates, access rules, profiles and answers'
shapes, without a socket."""

from __future__ import annotations

import hashlib
import ipaddress
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from pve_simulator.access import (
    ROLES,
    AccessControl,
    AccessError,
    normalize_path,
    totp,
    totp_matches,
)
from pve_simulator.api import ApiError, Param, Reply, decode_urlencoded, render, validate
from pve_simulator.certificates import ca_signed_certificate, self_signed_certificate
from pve_simulator.fleet import fleet_address
from pve_simulator.profiles import PROFILES, get_profile
from pve_simulator.scenarios import SCENARIOS, get_scenario
from pve_simulator.server import PveSimulator

USAGE_FIELDS = {"uptime", "cpu", "mem", "disk", "maxcpu", "maxmem", "maxdisk"}


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _alt_names(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in names.get_values_for_type(x509.IPAddress)
    }


# -- certificates -------------------------------------------------------------------------


def test_self_signed_certificate_covers_every_loopback_name():
    cert = _load(self_signed_certificate().cert_pem)
    assert _alt_names(cert) == {"localhost", "127.0.0.1", str(ipaddress.ip_address("::1"))}
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages


def test_a_nodes_certificate_names_its_own_address():
    assert "127.0.10.2" in _alt_names(_load(self_signed_certificate(["127.0.10.2"]).cert_pem))


def test_fingerprint_is_the_sha256_of_the_der_certificate_in_pve_form():
    certificate = self_signed_certificate()
    der = _load(certificate.cert_pem).public_bytes(Encoding.DER)
    expected = hashlib.sha256(der).hexdigest().upper()
    assert certificate.fingerprint.replace(":", "") == expected
    assert len(certificate.fingerprint.split(":")) == 32


def test_every_start_gets_a_new_certificate():
    assert self_signed_certificate().fingerprint != self_signed_certificate().fingerprint


def test_ca_signed_certificate_chains_to_the_ca_it_returns():
    certificate = ca_signed_certificate()
    assert certificate.ca_pem is not None
    leaf, ca = _load(certificate.cert_pem), _load(certificate.ca_pem)
    leaf.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert leaf.issuer == ca.subject != leaf.subject
    assert "127.0.0.1" in _alt_names(leaf)


def test_self_signed_certificate_has_no_ca():
    assert self_signed_certificate().ca_pem is None


# -- scenarios and profiles -----------------------------------------------------------------


def test_scenario_names_accept_underscores_and_case():
    assert get_scenario("No_Quorum") is SCENARIOS["no-quorum"]


def test_unknown_scenario_lists_the_choices():
    with pytest.raises(KeyError, match="healthy, degraded"):
        get_scenario("on-fire")


def test_unknown_profile_lists_the_choices():
    with pytest.raises(KeyError, match="pve7, pve8, pve9"):
        get_profile("pve6")


def test_profiles_differ_where_pve_releases_differ():
    pve7, pve8, pve9 = (PROFILES[name] for name in ("pve7", "pve8", "pve9"))
    assert pve7.version_data()["version"] == "7.4-13"
    assert pve8.version_data() == {
        "version": "8.2.4",
        "release": "8.2",
        "repoid": "faa83925c9641325",
    }
    assert pve9.version_data()["version"].startswith("9.")
    assert (pve8.message_in_body, pve8.unified_auth_failure) == (False, False)
    assert (pve9.message_in_body, pve9.unified_auth_failure) == (True, True)
    assert pve9.version_data("xtermjs")["console"] == "xtermjs"
    assert "console" not in pve9.version_data()


def test_fleet_addresses_stay_in_the_loopback_network():
    assert fleet_address("127.1", 0) == "127.1.0.1"
    assert fleet_address("127.1", 253) == "127.1.0.254"
    assert fleet_address("127.1", 254) == "127.1.1.1"
    assert all(ipaddress.ip_address(fleet_address("127.1", i)).is_loopback for i in range(999))


# -- roles and privileges (RPCEnvironment.pm permissions) -----------------------------------


@pytest.fixture
def access() -> AccessControl:
    control = AccessControl()
    control.add_user("alice@pve", "alice-pw")
    control.add_user("bob@pve", "bob-pw")
    return control


def test_built_in_roles_are_derived_as_pve_derives_them():
    assert ROLES["PVEAuditor"] >= {"Sys.Audit", "VM.Audit", "Datastore.Audit"}
    assert "Sys.Modify" not in ROLES["PVEAuditor"]
    assert "Permissions.Modify" in ROLES["Administrator"]
    assert "Permissions.Modify" not in ROLES["PVEAdmin"]
    assert "Mapping.Modify" not in ROLES["PVEAdmin"]
    assert ROLES["NoAccess"] == frozenset()


def test_propagated_roles_reach_sub_paths_and_unpropagated_ones_do_not(access):
    access.set_roles("alice@pve", {"/": ["PVEAuditor"]})
    assert access.check("alice@pve", "/nodes/pve1", ["Sys.Audit"])
    access.acl["/"][("user", "alice@pve")] = {"PVEAuditor": False}
    assert access.check("alice@pve", "/", ["Sys.Audit"])
    assert not access.check("alice@pve", "/nodes/pve1", ["Sys.Audit"])


def test_a_deeper_entry_replaces_what_was_inherited_and_no_access_wins(access):
    access.set_roles("alice@pve", {"/": ["Administrator"], "/nodes/pve2": ["NoAccess"]})
    assert access.check("alice@pve", "/nodes/pve1", ["Sys.Audit"])
    assert access.privileges("alice@pve", "/nodes/pve2") == {}


def test_privilege_separated_token_gets_the_intersection(access):
    access.set_roles("alice@pve", {"/": ["PVEAuditor"]})
    access.create_token("alice@pve", "sep", privsep=1, expire=None, comment=None)
    access.create_token("alice@pve", "full", privsep=0, expire=None, comment=None)
    assert access.privileges("alice@pve!sep", "/") == {}  # a token with no ACL: nothing
    assert access.check("alice@pve!full", "/", ["Sys.Audit"])  # no separation: the user's
    access.set_roles("alice@pve!sep", {"/": ["Administrator"]})
    held = access.privileges("alice@pve!sep", "/")
    assert "Sys.Audit" in held and "Sys.Modify" not in held  # never more than its user


def test_capabilities_follow_the_privileges(access):
    access.set_roles("alice@pve", {"/": ["PVEAuditor"]})
    caps = access.capabilities("alice@pve")
    assert caps["nodes"] == {"Sys.Audit": 1}
    assert caps["dc"] == {"Sys.Audit": 1, "SDN.Audit": 1}  # "dc" matches SDN. too
    assert access.capabilities("bob@pve")["nodes"] == {}


def test_root_pams_grants_are_not_acl_entries(access):
    access.add_user("root@pam", "x")
    access.set_roles("root@pam", {"/": ["Administrator"]})
    assert access.check("root@pam", "/nodes/pve1", ["Sys.Modify"])
    assert access.acl == {}


def test_acl_paths_are_normalised_as_pve_does():
    assert normalize_path("//nodes//pve1/") == "/nodes/pve1"
    assert normalize_path("nodes") == "/nodes"
    assert normalize_path("/vms/100 ; rm") is None


# -- credentials -------------------------------------------------------------------------------


def test_tickets_have_pves_shape_and_verify_until_they_expire(access):
    ticket = access.assemble_ticket("alice@pve")
    _user, timestamp, empty, signature = ticket.split(":", 1)[1].split(":", 3)
    assert ticket.startswith("PVE:alice@pve:") and empty == ""
    assert len(timestamp) == 8 and int(timestamp, 16) <= time.time()
    assert len(signature) == 344  # base64 of an RSA-2048 signature's 256 bytes
    assert access.verify_ticket(ticket)[0] == "alice@pve"
    old = access.assemble_ticket("alice@pve", now=time.time() - 7201)
    with pytest.raises(AccessError, match="^permission denied - invalid PVE ticket$"):
        access.verify_ticket(old)
    with pytest.raises(AccessError):
        access.verify_ticket(ticket[:-4] + "AAAA")


def test_a_shorter_ticket_lifetime_expires_tickets_sooner(access):
    access.ticket_lifetime = 60
    with pytest.raises(AccessError):
        access.verify_ticket(access.assemble_ticket("alice@pve", now=time.time() - 61))


def test_tfa_tickets_carry_the_challenge_and_need_the_user_to_verify(access):
    ticket = access.assemble_ticket('!tfa!{"totp":true}', aad="alice@pve")
    assert ticket.startswith('PVE:!tfa!{"totp"%3Atrue}:')  # only ":" is escaped
    assert access.verify_ticket(ticket, aad="alice@pve")[0] == '!tfa!{"totp":true}'
    with pytest.raises(AccessError):
        access.verify_ticket(ticket)  # signed with the user as additional data


def test_csrf_tokens_are_bound_to_the_user(access):
    token = access.assemble_csrf_token("alice@pve")
    assert len(token.split(":")[0]) == 8
    access.verify_csrf_token("alice@pve", token)
    with pytest.raises(AccessError, match="^Permission denied - invalid csrf token$"):
        access.verify_csrf_token("bob@pve", token)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("alice@pve!none=secret", "no such token 'none' for user 'alice@pve'"),
        ("ghost@pve!xy=secret", "no such user ('ghost@pve')"),
        ("alice@pve!tk=wrong", "invalid token value!"),
        ("alice@pve!tk", "no tokenid specified"),
        ("alice=x", "'alice' is not a valid token ID"),
    ],
)
def test_token_refusals_carry_pves_texts(access, value, message):
    access.create_token("alice@pve", "tk", privsep=1, expire=None, comment=None)
    with pytest.raises(AccessError) as refused:
        access.verify_token(value)
    assert str(refused.value).startswith(message)


def test_expired_tokens_are_refused(access):
    token, tokenid = access.create_token(
        "alice@pve", "old", privsep=1, expire=int(time.time()) - 1, comment=None
    )
    with pytest.raises(AccessError, match="^token 'old' access expired$"):
        access.verify_token(f"{tokenid}={token.secret}")


def test_openid_accounts_cannot_log_in_with_a_password(access):
    access.add_user("alice@oidc", None)
    with pytest.raises(AccessError, match="OpenID realm does not allow password"):
        access.authenticate_password("alice@oidc", "anything")


def test_totp_codes_follow_rfc_6238():
    # RFC 6238, appendix B: SHA-1, T = 59 s, key "12345678901234567890": 94287082 (8 digits)
    assert totp("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", at=59) == "287082"
    secret = "JBSWY3DPEHPK3PXP"
    assert totp_matches(secret, totp(secret))
    assert not totp_matches(secret, "000000" if totp(secret) != "000000" else "111111")


# -- parameters and the JSON formatter ---------------------------------------------------------


def test_form_bodies_decode_as_pve_does():
    assert decode_urlencoded("a=1&b=x+y;c=%21") == {"a": "1", "b": "x y", "c": "!"}
    assert decode_urlencoded("a=1&a=2") == {"a": ["1", "2"]}


def test_validation_reports_each_parameter_in_pves_words():
    schema = {
        "name": Param(),
        "flag": Param(type="boolean", optional=True),
        "count": Param(type="integer", optional=True, minimum=0),
        "id": Param(optional=True, pattern=r"[a-z]+"),
    }
    with pytest.raises(ApiError) as raised:
        validate({"flag": "true", "count": "-1", "id": "X1", "extra": "1"}, schema)
    assert raised.value.status == 400
    assert raised.value.message == "Parameter verification failed.\n"
    assert raised.value.errors == {
        "name": "property is missing and it is not optional",
        "flag": "type check ('boolean') failed - got 'true'",
        "count": "value must have a minimum value of 0",
        "id": "value does not match the regex pattern",
        "extra": "property is not defined in schema and the schema does not allow additional "
        "properties",
    }
    validate({"name": "n", "flag": "1", "count": "3"}, schema)  # nothing to say


def test_errors_go_into_the_body_as_message_only_on_newer_pve():
    reply = Reply(403, "Permission check failed (/, Sys.Audit)\n")
    assert render(reply, message_in_body=False) == b'{"data":null}'
    assert render(reply, message_in_body=True) == (
        b'{"data":null,"message":"Permission check failed (/, Sys.Audit)\\n"}'
    )
    assert reply.reason == "Permission check failed (/, Sys.Audit)"


# -- what a cluster reports (PveSimulator, not started) ----------------------------------------


@pytest.fixture(scope="module")
def cluster() -> PveSimulator:
    return PveSimulator(hosts=["127.0.0.1"])


def test_clustered_status_has_one_cluster_entry_and_one_entry_per_node(cluster):
    cluster.set_scenario("healthy")
    entries = cluster.cluster_status(cluster.nodes[0])
    assert entries[0] == {
        "type": "cluster",
        "id": "cluster",
        "nodes": 3,
        "version": 5,
        "name": "sim",
        "quorate": 1,
    }
    nodes = entries[1:]
    assert [node["name"] for node in nodes] == ["pve1", "pve2", "pve3"]
    assert set(nodes[0]) == {"type", "id", "name", "online", "local", "nodeid", "ip", "level"}
    assert [node["local"] for node in nodes] == [1, 0, 0]
    assert all(ipaddress.ip_address(node["ip"]).is_loopback for node in nodes)


def test_standalone_node_has_no_cluster_entry_and_nodeid_zero(cluster):
    cluster.set_scenario("standalone")
    try:
        assert [
            (e["type"], e["nodeid"], e["ip"]) for e in cluster.cluster_status(cluster.nodes[0])
        ] == [("node", 0, "127.0.0.1")]
    finally:
        cluster.set_scenario("healthy")


def test_quorum_needs_a_majority_online(cluster):
    cluster.set_scenario("no-quorum")
    try:
        entries = cluster.cluster_status(cluster.nodes[0])
        assert entries[0]["quorate"] == 0
        assert [e["online"] for e in entries[1:]] == [1, 0, 0]
        cluster.set_scenario("degraded")
        assert cluster.cluster_status(cluster.nodes[0])[0]["quorate"] == 1
    finally:
        cluster.set_scenario("healthy")


def test_nodes_listing_strips_usage_without_sys_audit_and_for_offline_nodes(cluster):
    cluster.set_scenario("degraded")
    try:
        audited = cluster.nodes_listing(lambda node: True)
        blind = cluster.nodes_listing(lambda node: False)
    finally:
        cluster.set_scenario("healthy")
    assert [entry["node"] for entry in blind] == ["pve1", "pve2", "pve3"]  # every node
    assert set(audited[0]) >= USAGE_FIELDS
    assert audited[0]["ssl_fingerprint"] == cluster.fingerprint
    assert not set(blind[0]) & USAGE_FIELDS
    assert blind[0]["status"] == "online"
    offline = audited[2]
    assert set(offline) == {"id", "node", "type", "status", "ssl_fingerprint"}
    assert offline["status"] == "offline"
    assert len({entry["ssl_fingerprint"] for entry in audited}) == 3  # each node its own


def test_scenario_roles_replace_the_accounts_and_switch_back(cluster):
    cluster.set_scenario("no-permission")
    assert cluster.access.privileges(cluster.username, "/") == {}
    cluster.set_scenario("auditor")
    assert cluster.access.check(cluster.username, "/", ["Sys.Audit"])
    assert not cluster.access.check(cluster.username, "/", ["Sys.Modify"])
    cluster.set_scenario("healthy")
    assert cluster.access.check(cluster.username, "/", ["Permissions.Modify"])


def test_standalone_pve7_pins_its_profile_whatever_the_simulators(cluster):
    cluster.configure(scenario="standalone-pve7", profile="pve9")
    try:
        assert cluster.profile.name == "pve7"
        cluster.set_scenario("healthy")
        assert cluster.profile.name == "pve9"
    finally:
        cluster.configure(scenario="healthy", profile="pve8")


@pytest.mark.parametrize(
    "settings",
    [
        {"roles": "Wizard"},
        {"profile": "pve6"},
        {"console": "telnet"},
        {"ticket_lifetime": -1},
        {"max_keepalive_requests": 0},
    ],
)
def test_configure_refuses_what_pve_cannot_be(cluster, settings):
    with pytest.raises((ValueError, KeyError)):
        cluster.configure(**settings)


def test_multi_node_mode_needs_no_hosts_and_loopback_networks():
    with pytest.raises(ValueError, match="omit hosts"):
        PveSimulator(nodes=2, hosts=["127.0.0.1"])
    with pytest.raises(ValueError, match="loopback"):
        PveSimulator(nodes=2, node_network="10.0.0")
