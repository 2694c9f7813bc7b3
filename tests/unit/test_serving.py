"""make serve's front end (proxmoxer_site/serving.py) driven as gunicorn's
asgi worker drives it, with a WSGI application that records what it was
given: bodies arrive whole with their real length, oversized ones are
refused before the application runs, the answer comes back as the
application gave it. Over real sockets, with stalled and trickling
clients: tests/e2e/test_production_serving.py."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from proxmoxer_site.serving import BufferedWsgi

LIMIT = 100


class Recorder:
    """A WSGI application that keeps the environ and body it was called with."""

    def __init__(self, status: str = "200 OK", body: bytes = b'{"ok": true}') -> None:
        self.status = status
        self.body = body
        self.calls: list[tuple[dict[str, Any], bytes]] = []

    def __call__(self, environ, start_response):
        self.calls.append((environ, environ["wsgi.input"].read()))
        start_response(self.status, [("Content-Type", "application/json")])
        return [self.body[:5], self.body[5:]]


def front(application) -> BufferedWsgi:
    return BufferedWsgi(application, threads=2, max_body_bytes=LIMIT, body_timeout=30)


def http_scope(method="POST", headers=(), path="/api/v1/clusters", query=b"") -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "query_string": query,
        "headers": [(name.encode(), value.encode()) for name, value in headers],
        "scheme": "http",
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.9", 50000),
    }


def serve(app: BufferedWsgi, scope: dict[str, Any], chunks: list[bytes]) -> tuple[int, dict, bytes]:
    """One request through ``app``; the status, headers and body sent back."""
    incoming = [
        {"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1}
        for n, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive():
        if not incoming:
            raise AssertionError("the front read past the end of the body")
        return incoming.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, *bodies = sent
    headers = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], headers, b"".join(message.get("body", b"") for message in bodies)


def test_a_chunked_body_reaches_the_application_whole_with_its_length():
    recorder = Recorder()
    scope = http_scope(
        headers=[("Transfer-Encoding", "chunked"), ("Content-Type", "application/json")]
    )

    status, headers, body = serve(front(recorder), scope, [b'{"name":', b' "prod"', b"}"])

    environ, received = recorder.calls[0]
    assert received == b'{"name": "prod"}'
    assert environ["CONTENT_LENGTH"] == str(len(received))
    assert "HTTP_TRANSFER_ENCODING" not in environ
    assert environ["CONTENT_TYPE"] == "application/json"
    assert (status, headers["content-type"], body) == (200, "application/json", b'{"ok": true}')


def test_the_environ_is_what_a_wsgi_server_gives():
    recorder = Recorder()
    scope = http_scope(
        method="GET",
        path="/api/v1/clusters/caf\u00e9",
        query=b"status=healthy",
        headers=[("Cookie", "a=1"), ("Cookie", "b=2"), ("X-Forwarded-Proto", "https")],
    )

    serve(front(recorder), scope, [b""])

    environ, received = recorder.calls[0]
    assert received == b""
    assert "CONTENT_LENGTH" not in environ
    assert environ["PATH_INFO"] == "/api/v1/clusters/caf\u00e9".encode().decode("latin-1")
    assert environ["QUERY_STRING"] == "status=healthy"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_FORWARDED_PROTO"] == "https"
    assert (environ["REMOTE_ADDR"], environ["SERVER_PORT"]) == ("127.0.0.9", "8000")


def test_a_declared_oversized_body_is_413_before_anything_is_read():
    recorder = Recorder()
    scope = http_scope(headers=[("Content-Length", str(LIMIT + 1))])

    status, headers, body = serve(front(recorder), scope, [])  # reading would fail the test

    assert status == 413
    assert json.loads(body) == {
        "code": "PayloadTooLarge",
        "message": f"Request body too large: the limit is {LIMIT} bytes",
        "details": None,
    }
    assert headers["content-type"] == "application/json"
    assert recorder.calls == []


def test_a_sent_oversized_body_is_413_and_the_application_never_runs():
    recorder = Recorder()
    scope = http_scope(headers=[("Transfer-Encoding", "chunked")])

    status, _, _ = serve(front(recorder), scope, [b"x" * 60, b"x" * 60, b"never read"])

    assert status == 413
    assert recorder.calls == []


def test_a_content_length_that_is_not_a_number_is_400():
    status, _, body = serve(front(Recorder()), http_scope(headers=[("Content-Length", "1e3")]), [])

    assert status == 400
    assert json.loads(body)["code"] == "BadRequest"


def test_the_applications_status_and_body_come_back_as_given():
    status, _, body = serve(front(Recorder("409 Conflict", b"taken")), http_scope(), [b"{}"])

    assert (status, body) == (409, b"taken")


def test_an_application_that_raises_past_its_own_handling_is_a_bare_500():
    def broken(environ, start_response):
        raise RuntimeError("boom")

    status, _, body = serve(front(broken), http_scope(), [b"{}"])

    assert (status, body) == (500, b"Internal Server Error")


def test_lifespan_starts_and_shuts_the_thread_pool_down():
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(front(Recorder())({"type": "lifespan"}, receive, send))

    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
