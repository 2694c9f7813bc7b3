"""No request can make the API answer 500 by its shape, authenticated or not
(docs/product-contract.md §13): format suffixes and unknown formats, odd
ids, JSON nested deeper than the interpreter's recursion allows, more form
fields or query parameters than Django takes, a chunked body without a
length. Each is a 4xx in the error envelope."""

from __future__ import annotations

import io
import json

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/clusters"
SOME_UUID = "12345678-1234-1234-1234-123456789012"


def assert_envelope(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    return body


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (f"{CLUSTERS}?format=xml", 406, "Format 'xml' is not offered here; use one of json, api"),
        ("/api/v1/?format=xml", 406, "Format 'xml' is not offered here; use one of json, api"),
        ("/health?format=xml", 406, "Format 'xml' is not offered here; use one of json, api"),
        (
            "/api/v1/schema/?format=xml",
            406,
            "Format 'xml' is not offered here; use one of yaml, json",
        ),
        (f"{CLUSTERS}.json", 404, f"No API endpoint at {CLUSTERS}.json"),
        (f"{CLUSTERS}.xml", 404, f"No API endpoint at {CLUSTERS}.xml"),
        ("/api/v1.json", 404, "No API endpoint at /api/v1.json"),
    ],
)
@pytest.mark.parametrize("who", ["anonymous_client", "api_client"])
def test_formats_the_api_does_not_speak_are_4xx_for_anyone(request, who, path, status, message):
    client = request.getfixturevalue(who)

    body = assert_envelope(client.get(path), status)

    assert body["message"] == message


@pytest.mark.parametrize(
    "cluster_id",
    ["0.5", "0.5/", "x.json", f"{SOME_UUID}.json", "%00", "%2e%2e", "a" * 5000, "-1", "1e9"],
)
def test_odd_ids_are_400_cluster_id_must_be_a_uuid(api_client, cluster_id):
    for method in ("get", "delete"):
        body = assert_envelope(getattr(api_client, method)(f"{CLUSTERS}/{cluster_id}"), 400)
        assert body["message"] == "Cluster id must be a UUID"
    body = assert_envelope(api_client.post(f"{CLUSTERS}/{cluster_id.rstrip('/')}/refresh"), 400)
    assert body["message"] == "Cluster id must be a UUID"


@pytest.mark.parametrize("depth", [950, 5000])
def test_json_nested_deeper_than_the_limit_is_400_before_it_is_parsed(api_client, depth):
    for document in ("[" * depth + "]" * depth, '{"name": ' + "[" * depth + "]" * depth + "}"):
        response = api_client.post(CLUSTERS, document, content_type="application/json")

        body = assert_envelope(response, 400)
        assert body["message"] == "Malformed request body: JSON nested more than 32 levels deep"


def test_json_within_the_depth_limit_reaches_the_field_rules(api_client):
    nested = "[" * 31 + "]" * 31
    document = (
        '{"name": '
        + nested
        + ', "api_endpoint": "pve1", "brackets": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'
    )

    body = assert_envelope(
        api_client.post(CLUSTERS, document, content_type="application/json"), 400
    )

    assert body["message"] == "Cluster name: Not a valid string."


def test_deeply_nested_json_from_an_anonymous_client_is_401_not_parsed(anonymous_client):
    document = "[" * 5000 + "]" * 5000

    assert_envelope(anonymous_client.post(CLUSTERS, document, content_type="application/json"), 401)


def test_more_form_fields_than_django_takes_is_400(api_client):
    form = "&".join(f"field{i}=1" for i in range(1001))

    response = api_client.post(CLUSTERS, form, content_type="application/x-www-form-urlencoded")

    body = assert_envelope(response, 400)
    assert body["message"] == (
        "The number of GET/POST parameters exceeded settings.DATA_UPLOAD_MAX_NUMBER_FIELDS."
    )


@pytest.mark.parametrize("who", ["anonymous_client", "api_client"])
def test_more_query_parameters_than_django_takes_is_400_for_anyone(request, who):
    query = "&".join(f"p{i}=1" for i in range(1001))

    response = request.getfixturevalue(who).get(f"{CLUSTERS}?{query}")

    assert_envelope(response, 400)


def call_wsgi(environ: dict) -> tuple[int, dict[str, str], bytes]:
    """The WSGI application called as a server calls it (the test client
    always gives a body its Content-Length)."""
    started: dict = {}

    def start_response(status, headers, exc_info=None):
        started["status"] = int(status.split()[0])
        started["headers"] = dict(headers)

    body = b"".join(WSGIHandler()(environ, start_response))
    return started["status"], started["headers"], body


def test_a_chunked_body_without_a_length_is_411_not_read_as_empty(user):
    from clusters.api_tokens import create_token

    _, token = create_token(user)
    document = json.dumps({"name": "prod", "api_endpoint": "pve1"}).encode()
    request = RequestFactory().post(
        CLUSTERS,
        data=document,
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        HTTP_AUTHORIZATION=f"Token {token}",
    )
    environ = dict(request.environ)
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input"] = io.BytesIO(document)

    status, headers, body = call_wsgi(environ)

    assert status == 411
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "code": "LengthRequired",
        "message": "Send the request body with a Content-Length (chunked bodies are not read)",
        "details": None,
    }
