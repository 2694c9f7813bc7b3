"""No secret leaves the service: not in a response, not in a log line.
And the log lines themselves: the format of docs/product-contract.md §16, one
access line per request."""

from __future__ import annotations

import logging
import threading

import pytest
import requests
from rest_framework.test import APIClient

from proxmoxer_site.log_format import LogLineFormatter
from tests import pve_responses as pve
from tests.conftest import assert_secret_absent

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
PASSWORD = "Pa55-leak-canary-0f3a9d"
TOKEN_SECRET = "9c1e77d0-leak-canary-token-secret"
SECRETS = (PASSWORD, TOKEN_SECRET)


def password_registration(name="prod"):
    return {
        "name": name,
        "api_endpoint": "pve.example.com",
        "username": "root@pam",
        "password": PASSWORD,
    }


def token_registration(name="prod-token", endpoint="pve.example.com"):
    return {
        "name": name,
        "api_endpoint": endpoint,
        "token_id": "root@pam!ci",
        "token_secret": TOKEN_SECRET,
    }


def formatted(caplog):
    formatter = LogLineFormatter("[%(levelname)s] %(message)s")
    return [formatter.format(record) for record in caplog.records]


def test_no_response_or_log_line_carries_a_password_or_token_secret(api_client, pve_api, caplog):
    caplog.set_level(logging.DEBUG)
    pve.healthy_cluster(pve_api)
    [another] = pve.healthy_clusters(pve_api, ["tokens"]).values()
    responses = [
        api_client.post(CLUSTERS, password_registration(), format="json"),
        api_client.post(CLUSTERS, token_registration(endpoint=another), format="json"),
        api_client.post(CLUSTERS, password_registration("PROD"), format="json"),  # 409
        api_client.post(CLUSTERS, {**password_registration("x"), "api_endpoint": "http://a"}),
        api_client.post(CLUSTERS, {**password_registration("y"), "username": "root"}),
        api_client.get(CLUSTERS),
        api_client.get(CLUSTERS, HTTP_ACCEPT="text/html"),
    ]
    cluster_id = responses[0].json()["id"]
    responses += [
        api_client.get(f"{CLUSTERS}/{cluster_id}"),
        api_client.post(f"{CLUSTERS}/{cluster_id}/refresh"),
    ]
    pve.login_refused(pve_api)
    responses.append(api_client.post(CLUSTERS, password_registration("z"), format="json"))
    responses.append(api_client.post(f"{CLUSTERS}/{cluster_id}/refresh"))
    pve_api.post(f"{pve.API}/access/ticket", exc=requests.exceptions.SSLError("bad cert"))
    responses.append(api_client.post(CLUSTERS, password_registration("w"), format="json"))
    pve_api.get(f"{pve.API}/version", status_code=500, reason="boom")
    responses.append(api_client.post(CLUSTERS, token_registration("v"), format="json"))

    assert [r.status_code for r in responses] == [
        201, 201, 409, 400, 400, 200, 200, 200, 200, 401, 200, 502, 502,
    ]  # fmt: skip
    for response in responses:
        for secret in SECRETS:
            assert_secret_absent(secret, response.content, f"a {response.status_code} response")
    assert caplog.records, "the calls above were logged"
    for line in formatted(caplog):
        for secret in SECRETS:
            assert_secret_absent(secret, line, "a log line")


def test_log_lines_follow_the_contract(api_client, pve_api, caplog):
    caplog.set_level(logging.INFO)
    pve.healthy_cluster(pve_api)
    cluster_id = api_client.post(CLUSTERS, password_registration(), format="json").json()["id"]
    api_client.post(CLUSTERS, password_registration("Prod"), format="json")
    pve.login_refused(pve_api)
    api_client.post(CLUSTERS, password_registration("other"), format="json")

    lines = [line for line in formatted(caplog) if "proxmoxer.access" not in line]
    assert f"[INFO] Cluster registered successfully, cluster_id={cluster_id}, name=prod" in lines
    assert "[WARN] Cluster name already exists, name=Prod" in lines
    assert (
        "[ERROR] Proxmox authentication failed, error=Proxmox refused the credentials of "
        "root@pam (authentication failure)"
    ) in lines


def test_each_request_leaves_exactly_one_access_line(api_client, anonymous_client, caplog):
    caplog.set_level(logging.INFO, logger="proxmoxer.access")
    api_client.get(CLUSTERS)
    anonymous_client.get(f"{CLUSTERS}/")
    api_client.get("/api/v1/nowhere%0Aforged")

    access = [r.getMessage() for r in caplog.records if r.name == "proxmoxer.access"]
    assert len(access) == 3
    assert access[0].startswith("GET /api/v1/clusters 200 ") and access[0].endswith("user=operator")
    assert access[1].startswith("GET /api/v1/clusters/ 401 ") and access[1].endswith("user=-")
    assert "\n" not in access[2] and "%0A" in access[2], "a URL cannot forge a log line"


@pytest.mark.django_db(transaction=True)  # the other threads' connections see the user's role
def test_concurrent_registrations_of_one_name_through_the_api_give_one_cluster(
    api_client, user, pve_api
):
    pve.healthy_cluster(pve_api)
    threads = 12
    barrier = threading.Barrier(threads)
    statuses = []

    def register():
        client = APIClient()  # one per thread: a test client is not thread-safe
        client.force_authenticate(user)
        barrier.wait()
        statuses.append(client.post(CLUSTERS, password_registration(), format="json").status_code)

    workers = [threading.Thread(target=register) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    assert sorted(statuses) == [201] + [409] * (threads - 1)
    assert api_client.get(CLUSTERS).json()["total"] == 1
