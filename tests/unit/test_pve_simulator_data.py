"""The simulator's certificates and scenario data, without a socket."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from pve_simulator.certificates import ca_signed_certificate, self_signed_certificate
from pve_simulator.scenarios import SCENARIOS, get_scenario

USAGE_FIELDS = {"cpu", "maxcpu", "mem", "maxmem", "uptime", "ssl_fingerprint"}


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _alt_names(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in names.get_values_for_type(x509.IPAddress)
    }


def test_self_signed_certificate_covers_every_loopback_name():
    cert = _load(self_signed_certificate().cert_pem)
    assert _alt_names(cert) == {"localhost", "127.0.0.1", str(ipaddress.ip_address("::1"))}
    assert cert.issuer == cert.subject
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usages


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


def test_scenario_names_accept_underscores_and_case():
    assert get_scenario("No_Quorum") is SCENARIOS["no-quorum"]


def test_unknown_scenario_lists_the_choices():
    with pytest.raises(KeyError, match="healthy, degraded"):
        get_scenario("on-fire")


def test_clustered_status_has_one_cluster_entry_and_one_entry_per_node():
    entries = get_scenario("healthy").cluster_status()
    cluster = [entry for entry in entries if entry["type"] == "cluster"]
    nodes = [entry for entry in entries if entry["type"] == "node"]
    assert cluster == [
        {"type": "cluster", "id": "cluster", "name": "sim", "nodes": 3, "quorate": 1, "version": 5}
    ]
    assert [node["name"] for node in nodes] == ["pve1", "pve2", "pve3"]
    assert set(nodes[0]) == {"type", "id", "name", "online", "local", "nodeid", "ip", "level"}
    assert [node["local"] for node in nodes] == [1, 0, 0]


def test_standalone_node_has_no_cluster_entry_and_nodeid_zero():
    scenario = get_scenario("standalone-pve7")
    assert scenario.version["version"] == "7.4-13"
    assert [(e["type"], e["nodeid"]) for e in scenario.cluster_status()] == [("node", 0)]
    assert "clustername" not in scenario.login_data("root@pam", "PVE:t", "c")


def test_no_quorum_marks_the_cluster_entry_not_quorate():
    entries = get_scenario("no-quorum").cluster_status()
    assert entries[0]["quorate"] == 0
    assert [e["online"] for e in entries[1:]] == [1, 0, 0]


def test_offline_nodes_lack_usage_fields():
    listing = get_scenario("degraded").nodes_listing("AA:BB")
    online, offline = listing[0], listing[2]
    assert set(online) >= USAGE_FIELDS
    assert online["ssl_fingerprint"] == "AA:BB"
    assert offline == {"type": "node", "id": "node/pve3", "node": "pve3", "status": "offline"}


def test_account_without_sys_audit_sees_only_its_nodes():
    scenario = get_scenario("no-permission")
    assert [entry["node"] for entry in scenario.nodes_listing("AA")] == ["pve1", "pve2"]


def test_second_factor_login_asks_for_tfa():
    data = get_scenario("second-factor").login_data("root@pam", "PVE:!tfa!x", "c")
    assert data["NeedTFA"] == 1
