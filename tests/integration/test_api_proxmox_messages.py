"""What Proxmox says, as the REST API passes it on, against the simulator's
releases (pve_simulator/profiles.py): the body's ``message`` of PVE 9 where
a reverse proxy replaced the reason phrase, PVE 9.1.5's "Authentication
failed!" for a token, and a password login in an OpenID Connect realm."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from pve_simulator.proxy import ReverseProxy
from pve_simulator.server import PveSimulator
from tests.conftest import assert_secret_absent

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
WRONG_SECRET = "00000000-0000-4000-8000-000000000000"
OIDC_PASSWORD = "not-a-password-anywhere-oidc"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PveSimulator]:
    with PveSimulator(hosts=["127.0.0.1"], auth_failure_delay=0.05) as simulator:
        yield simulator


@pytest.fixture
def sim(cluster: PveSimulator) -> Iterator[PveSimulator]:
    yield cluster
    cluster.configure(profile="pve8", roles="Administrator")


@pytest.fixture
def rewriting_proxy(cluster: PveSimulator) -> Iterator[ReverseProxy]:
    """nginx in front, replacing PVE's reason phrases by the standard ones."""
    with ReverseProxy(cluster, standard_reasons=True) as proxy:
        yield proxy


def register(api_client, endpoint: str, fingerprint: str, **credentials: object):
    body = {"name": "msg", "api_endpoint": endpoint, "fingerprint": fingerprint, **credentials}
    return api_client.post(CLUSTERS, body, format="json")


def assert_nothing_stored(api_client) -> None:
    assert api_client.get(CLUSTERS).json()["total"] == 0


@pytest.mark.parametrize("profile", ["pve7", "pve8", "pve9"])
def test_a_password_for_an_openid_account_is_401_saying_to_use_an_api_token(
    api_client, sim, profile, caplog
):
    caplog.set_level(logging.DEBUG)
    sim.configure(profile=profile)

    response = register(
        api_client,
        sim.url_for("127.0.0.1"),
        sim.fingerprint,
        username="alice@oidc",
        password=OIDC_PASSWORD,
    )

    assert response.status_code == 401
    assert response.json() == {
        "code": "Unauthorized",
        "message": (
            "Proxmox refused the password of alice@oidc: oidc is an OpenID Connect realm, "
            "where a password login cannot work; register with an API token of alice@oidc "
            "(alice@oidc!<name>) instead"
        ),
        "details": None,
    }
    assert_nothing_stored(api_client)
    for text, where in ((response.content, "the answer"), (caplog.text, "the log")):
        assert_secret_absent(OIDC_PASSWORD, text, where)


@pytest.mark.parametrize(
    ("profile", "reason", "advice"),
    [
        ("pve8", "invalid token value!", ""),
        (
            "pve9",
            "Authentication failed!",
            ": the token id or secret is wrong, or the token expired or was removed on the "
            "cluster; register or edit the cluster with a valid API token",
        ),
    ],
)
def test_a_wrong_token_secret_is_401_in_the_words_of_each_release(
    api_client, sim, profile, reason, advice
):
    sim.configure(profile=profile)

    response = register(
        api_client,
        sim.url_for("127.0.0.1"),
        sim.fingerprint,
        token_id=sim.token_id,
        token_secret=WRONG_SECRET,
    )

    assert response.status_code == 401
    assert response.json()["message"] == (
        f"Proxmox refused the credentials of {sim.token_id} ({reason}){advice}"
    )
    assert_nothing_stored(api_client)
    assert_secret_absent(WRONG_SECRET, response.content, "the answer")


@pytest.mark.parametrize(
    ("profile", "quoted"), [("pve8", "Unauthorized"), ("pve9", "authentication failure")]
)
def test_behind_a_proxy_rewriting_reasons_pve9s_body_message_is_what_the_api_shows(
    api_client, sim, rewriting_proxy, profile, quoted
):
    sim.configure(profile=profile)

    response = register(
        api_client,
        rewriting_proxy.url,
        rewriting_proxy.fingerprint,
        username=sim.username,
        password="wrong-password",
    )

    assert response.status_code == 401
    assert response.json()["message"] == (
        f"Proxmox refused the credentials of {sim.username} ({quoted})"
    )
    assert_nothing_stored(api_client)


@pytest.mark.parametrize(
    ("profile", "quoted"),
    [("pve8", "Forbidden"), ("pve9", "Permission check failed (/, Permissions.Modify)")],
)
def test_behind_a_proxy_rewriting_reasons_a_refused_hand_off_carries_pve9s_message(
    api_client, sim, rewriting_proxy, profile, quoted
):
    sim.configure(profile=profile, roles="PVEAuditor")  # may read, may not grant

    response = register(
        api_client,
        rewriting_proxy.url,
        rewriting_proxy.fingerprint,
        username=sim.username,
        password=sim.password,
        create_token=True,
    )

    assert response.status_code == 403
    assert response.json()["details"] == {"proxmox_reason": quoted}
    assert f": {quoted}. The token hand-off needs" in response.json()["message"]
    assert_nothing_stored(api_client)
    assert_secret_absent(sim.password, response.content, "the answer")
