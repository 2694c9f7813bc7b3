"""Field rules, the health model and secret handling of the domain."""

from __future__ import annotations

import pickle
import uuid

import pytest

from clusters.domain import (
    ClusterStatus,
    ClusterStatusEntry,
    FieldInvalid,
    InvalidClusterId,
    NodeEntry,
    PasswordCredentials,
    ProxmoxReport,
    RegistrationRequest,
    Secret,
    TokenCredentials,
    ValidationFailed,
    assess_health,
    name_key,
    normalise_endpoint,
    normalise_fingerprint,
    normalise_name,
    normalise_token_id,
    normalise_username,
    parse_cluster_id,
    parse_endpoint,
)
from tests.cluster_samples import make_cluster
from tests.conftest import assert_secret_absent


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        # a bare host is PVE itself: port 8006
        ("pve.example.com", "https://pve.example.com:8006"),
        ("pve.example.com:443", "https://pve.example.com:443"),
        ("  10.0.0.5  ", "https://10.0.0.5:8006"),
        ("[2001:0db8:0:0::1]", "https://[2001:db8::1]:8006"),
        ("2001:db8::1", "https://[2001:db8::1]:8006"),
        ("pve-1.lab.example.com.", "https://pve-1.lab.example.com:8006"),
        ("pve.example.com/pve", "https://pve.example.com:8006/pve"),
        # https:// without a port is what it is everywhere else: 443 (a reverse proxy)
        ("HTTPS://PVE.Example.COM", "https://pve.example.com:443"),
        ("https://pve.example.com/", "https://pve.example.com:443"),
        ("https://[2001:db8::1]", "https://[2001:db8::1]:443"),
        ("https://pve.example.com:8006", "https://pve.example.com:8006"),
        ("https://pve.example.com:8006/", "https://pve.example.com:8006"),
        ("https://pve.example.com:8006/api2/json", "https://pve.example.com:8006"),
        ("https://pve.example.com:8006/api2/json/", "https://pve.example.com:8006"),
        ("https://[2001:db8::1]:8006", "https://[2001:db8::1]:8006"),
        # a reverse proxy's path prefix is kept, as typed, without /api2/json
        ("https://proxy.example.com/pve", "https://proxy.example.com:443/pve"),
        ("https://proxy.example.com/pve/", "https://proxy.example.com:443/pve"),
        ("https://proxy.example.com/PVE/eu-1/api2/json", "https://proxy.example.com:443/PVE/eu-1"),
        ("https://proxy.example.com:8443/a.b_c~d-e/", "https://proxy.example.com:8443/a.b_c~d-e"),
        # the PVE web UI's address bar: its fragment is the UI's view, dropped
        (
            "https://pve1.example.com:8006/#v1:0:=node%2Fpve1:4:5:::::::",
            "https://pve1.example.com:8006",
        ),
        ("https://pve1.example.com:8006/#v1:0:18:4:::::::", "https://pve1.example.com:8006"),
        ("https://pve1.example.com:8006#v1", "https://pve1.example.com:8006"),
    ],
)
def test_endpoint_is_normalised_to_https_host_port_and_prefix(raw, normalised):
    assert normalise_endpoint(raw) == normalised


@pytest.mark.parametrize(
    ("raw", "port_implied", "hint"),
    [
        ("https://pve.example.com", True, "try https://pve.example.com:8006"),
        ("https://proxy.example.com/pve", True, "try https://proxy.example.com:8006"),
        ("https://pve.example.com:443", False, None),
        ("pve.example.com", True, None),  # 8006 implied: nothing to suggest
        ("https://pve.example.com:8006", False, None),
    ],
)
def test_only_an_implied_443_suggests_pves_own_port(raw, port_implied, hint):
    endpoint = parse_endpoint(raw)
    assert endpoint.port_implied is port_implied
    if hint is None:
        assert endpoint.no_answer_hint() is None
    else:
        assert hint in endpoint.no_answer_hint()


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("http://pve.example.com:8006", "must use https://"),
        ("ftp://pve.example.com", "must use https://"),
        ("https://root:secret@pve.example.com:8006", "must not embed credentials"),
        ("root@pve.example.com", "must not embed credentials"),
        ("https://pve.example.com:8006/?x=1", "query"),
        ("https://pve.example.com:8006?", "query"),
        ("https://pve.example.com:8006#frag", "fragment"),
        ("https://pve.example.com:8006/#summary", "fragment"),
        ("https://pve.example.com:8006/pve/#v1:0:18", "fragment"),  # the UI is not under a prefix
        ("https://pve.example.com:8006/?console=kvm#v1:0", "query"),
        ("https://pve.example.com:8006/api2/json/nodes", "/api2/json begins"),
        ("https://proxy.example.com/pve/../admin", "plain prefix"),
        ("https://proxy.example.com/pve//eu", "plain prefix"),
        ("https://proxy.example.com/p%2Fve", "plain prefix"),
        ("https://proxy.example.com/pve;x=1", "plain prefix"),
        ("https://pve.example.com:0", "port"),
        ("https://pve.example.com:70000", "port"),
        ("https://pve.example.com:http", "port"),
        ("https://", "name a host"),
        ("https://pve example.com", "spaces"),
        ("https://-pve.example.com", "valid host"),
        ("https://[2001:db8::zz]:8006", "IPv6"),
        ("https://[fe80::1%eth0]:8006", "zone id"),
        ("https://[fe80::1%25eth0]:8006", "zone id"),
        ("fe80::1%eth0", "zone id"),
        ("", "required"),
    ],
)
def test_endpoint_refuses_what_is_not_a_pve_api_root(raw, complaint):
    with pytest.raises(FieldInvalid, match=complaint):
        normalise_endpoint(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "0x7f000001",
        "2130706433",
        "https://2130706433:8006",
        "0177.0.0.1",
        "https://0177.0.0.1",
        "127.1",
        "0x7f.1",
        "10.0.0.05",
        "pve.0x10",
        "https://169.254.43518",
    ],
)
def test_endpoint_refuses_integer_octal_and_hex_ipv4_spellings(raw):
    with pytest.raises(FieldInvalid, match="four decimal numbers"):
        normalise_endpoint(raw)


def test_endpoint_complaint_never_repeats_embedded_credentials():
    with pytest.raises(FieldInvalid) as caught:
        normalise_endpoint("https://root:hunter2@pve.example.com")
    assert_secret_absent("hunter2", str(caught.value), "the error message")


def test_name_is_trimmed():
    assert normalise_name("  prod  ") == "prod"


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("   ", "required"),
        ("x" * 256, "at most 255"),
        ("prod\ncluster", "control characters"),
        ("prod\x00", "control characters"),
        ("prod\u202e", "control characters"),
    ],
)
def test_name_refuses_blank_long_and_control_characters(raw, complaint):
    with pytest.raises(FieldInvalid, match=complaint):
        normalise_name(raw)


def test_name_of_255_characters_is_accepted():
    assert normalise_name("x" * 255) == "x" * 255


FULL_WIDTH_PROD = "\uff50\uff52\uff4f\uff44"
CAFE_NFC, CAFE_NFD = "caf\u00e9", "cafe\u0301"


@pytest.mark.parametrize(
    ("one", "same"),
    [
        ("prod", FULL_WIDTH_PROD),  # full-width letters are compatibility forms
        ("Prod", FULL_WIDTH_PROD.upper()),
        (CAFE_NFC, CAFE_NFD),  # one character, or a letter and a combining accent
        (CAFE_NFC.upper(), CAFE_NFD),
        ("\u212b", "\u00e5"),  # ANGSTROM SIGN is the letter å
        ("\u216b", "xii"),  # ROMAN NUMERAL TWELVE
        ("\ufb03-lab", "FFI-LAB"),  # a ligature
        ("Stra\u00dfe", "STRASSE"),
        ("x\u00b2", "x2"),  # superscript two
        ("\u0345", "\u03b9"),  # the iota subscript folds only after NFD (D146)
    ],
)
def test_name_key_compares_after_nfkc_and_case_folding(one, same):
    assert name_key(one) == name_key(same)
    assert name_key(name_key(one)) == name_key(one), "the key of a key is itself"


@pytest.mark.parametrize(
    ("one", "other"), [("a", "\u00e1"), ("i", "\u0131"), ("\u00df", "s"), ("prod", "prod-2")]
)
def test_name_key_keeps_names_apart_that_differ_beyond_case_and_form(one, other):
    assert name_key(one) != name_key(other)


@pytest.mark.parametrize(
    "raw",
    [
        "\u3164",  # HANGUL FILLER (a letter by category, draws nothing)
        "\u2800",  # BRAILLE PATTERN BLANK
        "\u115f\u1160",  # Hangul choseong and jungseong fillers
        "\uffa0",  # HALFWIDTH HANGUL FILLER
        "\u0301",  # a combining accent alone
        "\u0301\u0308\u20dd",  # combining marks only (Mn, Me)
        "\ufe0f",  # a variation selector
        "\ue000",  # private use
        "\U000f0000",  # supplementary private use
        "\u0378",  # unassigned
        "\u3164 \u2800\u3000\u3164",  # fillers and spaces
    ],
)
def test_a_name_made_only_of_invisible_characters_is_refused(raw):
    with pytest.raises(FieldInvalid, match="visible character"):
        normalise_name(raw)


@pytest.mark.parametrize(
    "raw", ["\u3164prod", "e\u0301", "\u2800x", "\u6771\u4eac", "\U0001f680", "\u0e01\u0e34"]
)
def test_a_name_with_a_visible_character_is_accepted(raw):
    assert normalise_name(raw) == raw


def test_a_lone_surrogate_is_refused():
    with pytest.raises(FieldInvalid, match="valid Unicode"):
        normalise_name("prod\ud800")


def test_a_name_whose_comparison_key_outgrows_its_column_is_refused():
    # U+FDFA is eighteen characters under NFKC.
    assert len(name_key("\ufdfa")) == 18
    assert normalise_name("\ufdfa" * 42) == "\ufdfa" * 42
    with pytest.raises(FieldInvalid, match="too long once normalised"):
        normalise_name("\ufdfa" * 43)


@pytest.mark.parametrize("username", ["root@pam", "admin@pve", "j.doe@example.com@ldap-corp"])
def test_username_with_realm_is_accepted(username):
    assert normalise_username(username) == username


@pytest.mark.parametrize("username", ["root", "root@", "@pam", "ro ot@pam", "root@p", "a/b@pam"])
def test_username_without_a_valid_realm_is_refused(username):
    with pytest.raises(FieldInvalid, match="realm"):
        normalise_username(username)


def test_token_id_needs_user_realm_and_token_name():
    assert normalise_token_id(" root@pam!proxmoxer ") == "root@pam!proxmoxer"
    for bad in ["root@pam", "root@pam!", "root!tok", "root@pam!1tok"]:
        with pytest.raises(FieldInvalid, match="user@realm!tokenname"):
            normalise_token_id(bad)


def test_fingerprint_is_normalised_to_colon_pairs_in_upper_case():
    digits = "ab" * 32
    expected = ":".join(["AB"] * 32)
    assert normalise_fingerprint(digits) == expected
    assert normalise_fingerprint(":".join(["ab"] * 32)) == expected


@pytest.mark.parametrize("raw", ["ab" * 31, "ab" * 33, "zz" * 32, "AB:CD"])
def test_fingerprint_must_be_sha256(raw):
    with pytest.raises(FieldInvalid, match="64 hex digits"):
        normalise_fingerprint(raw)


def _request(**overrides):
    fields = {
        "name": "prod",
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": "hunter2",
    }
    fields.update(overrides)
    return RegistrationRequest(**fields)


def test_registration_with_password_validates_to_password_credentials():
    registration = _request(fingerprint="ab" * 32, verify_tls=False).validate()
    assert registration.name == "prod"
    assert registration.target.api_endpoint == "https://pve.example.com:8006"
    assert registration.target.verify_tls is False
    assert registration.target.fingerprint == ":".join(["AB"] * 32)
    assert registration.credentials == PasswordCredentials("root@pam", Secret("hunter2"))


def test_registration_with_token_validates_to_token_credentials():
    registration = _request(
        username=None, password=None, token_id="root@pam!ci", token_secret="0f1e-uuid"
    ).validate()
    assert registration.credentials == TokenCredentials("root@pam!ci", Secret("0f1e-uuid"))


def test_registration_lists_every_failing_field():
    with pytest.raises(ValidationFailed) as caught:
        _request(name=" ", api_endpoint="http://x", username="root").validate()
    assert set(caught.value.details) == {"name", "api_endpoint", "username"}
    assert caught.value.message == "Cluster name is required"


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"password": ""}, "Password is required"),
        ({"username": None, "password": None}, "Credentials are required"),
        ({"token_id": "root@pam!ci", "token_secret": "s"}, "not both"),
        ({"username": None, "password": None, "token_id": "root@pam!ci"}, "Token secret"),
        ({"password": "x" * 1025}, "at most 1024"),
    ],
)
def test_registration_needs_exactly_one_complete_kind_of_credentials(overrides, complaint):
    with pytest.raises(ValidationFailed, match=complaint):
        _request(**overrides).validate()


def test_registration_request_repr_hides_secrets():
    text = repr(_request(token_secret="tok-secret-1", password="pw-secret-1"))
    assert_secret_absent("pw-secret-1", text, "repr(RegistrationRequest)")
    assert_secret_absent("tok-secret-1", text, "repr(RegistrationRequest)")


def test_cluster_id_parses_uuids_and_refuses_anything_else():
    value = uuid.uuid4()
    assert parse_cluster_id(str(value)) == value
    assert parse_cluster_id(value) is value
    for bad in ["nope", "1234", "x" * 200, ""]:
        with pytest.raises(InvalidClusterId):
            parse_cluster_id(bad)


def test_secret_never_shows_its_value():
    secret = Secret("s3cr3t-value")
    for text in (repr(secret), str(secret), f"{secret}", f"{secret!r}", "%s" % (secret,)):  # noqa: UP031 - logging formats with %
        assert_secret_absent("s3cr3t-value", text, "a formatted Secret")
    assert secret.reveal() == "s3cr3t-value"
    assert secret == Secret("s3cr3t-value")
    assert secret != Secret("other")


def test_secret_refuses_to_be_pickled():
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Secret("s3cr3t-value"))


def test_cluster_repr_shows_no_password():
    cluster = make_cluster(credentials=PasswordCredentials("root@pam", Secret("pw-in-repr")))
    assert_secret_absent("pw-in-repr", repr(cluster), "repr(Cluster)")
    assert cluster.username == "root@pam"
    assert cluster.token_id is None


def _node(name, online=True):
    return ClusterStatusEntry(type="node", name=name, online=online)


def _cluster(quorate=True):
    return ClusterStatusEntry(type="cluster", name="prod", quorate=quorate)


@pytest.mark.parametrize(
    ("entries", "status", "nodes"),
    [
        ([_cluster(), _node("a"), _node("b"), _node("c")], ClusterStatus.HEALTHY, 3),
        ([_cluster(), _node("a"), _node("b", False), _node("c")], ClusterStatus.DEGRADED, 3),
        ([_cluster(False), _node("a"), _node("b"), _node("c")], ClusterStatus.UNHEALTHY, 3),
        ([_cluster(), _node("a", False), _node("b", False)], ClusterStatus.UNHEALTHY, 2),
        ([_node("standalone")], ClusterStatus.HEALTHY, 1),
        ([_node("standalone", False)], ClusterStatus.UNHEALTHY, 1),
    ],
    ids=["healthy", "degraded", "no-quorum", "no-node-online", "standalone", "standalone-down"],
)
def test_health_follows_quorum_and_nodes_online(entries, status, nodes):
    health = assess_health(ProxmoxReport(version="8.2.4", cluster_status=entries))
    assert (health.status, health.node_count) == (status, nodes)


def test_health_is_unknown_when_cluster_status_is_forbidden_and_counts_visible_nodes():
    report = ProxmoxReport(
        version="8.2.4",
        cluster_status=None,
        nodes=[NodeEntry("pve1", "online"), NodeEntry("pve2", "offline")],
    )
    health = assess_health(report)
    assert (health.status, health.node_count) == (ClusterStatus.UNKNOWN, 2)
