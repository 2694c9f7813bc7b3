"""``make serve``'s front end: the Django WSGI application behind an ASGI
layer that reads every request whole, within bounds, before a thread of the
application sees it (docs/security.md, "Slow clients").

Under gunicorn's threaded (gthread) worker a thread reads the request body
from the socket itself: eight clients that announce ``Content-Length: 1000``
and then stall held every thread, and ``/health`` timed out for as long as
they stalled. Here gunicorn's ``asgi`` worker (asyncio) holds the sockets,
and this layer

- reads a body on the event loop, where a stalled client costs a coroutine,
  not a thread, and answers 413 when it is larger than ``max_body_bytes``
  (declared or sent) and 408 when it has not arrived within
  ``body_timeout`` seconds, however it trickles;
- reads a chunked body too and hands it to Django with a Content-Length
  (a WSGI server would pass it on without one, and Django would read it as
  empty);
- then runs the WSGI application on a fixed pool of ``threads`` threads per
  process, as gthread did: Django's per-thread persistent database
  connections work as before;
- collects the response in that thread and sends it from the event loop,
  so a client that reads its answer slowly holds no thread either.

Everything the application does is unchanged: it is the same WSGI
application ``proxmoxer_site/wsgi.py`` serves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from typing import Any

logger = logging.getLogger("proxmoxer.serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WsgiApplication = Callable[..., Iterable[bytes]]


class _BodyTooLarge(Exception):
    pass


class _ClientLeft(Exception):
    pass


class BufferedWsgi:
    """An ASGI application that serves ``application`` (WSGI) from a pool of
    ``threads`` threads, each request read whole first."""

    def __init__(
        self,
        application: WsgiApplication,
        *,
        threads: int,
        max_body_bytes: int,
        body_timeout: float,
    ) -> None:
        self._application = application
        self._threads = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no websockets here: the connection is closed unanswered
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            status = 400 if not declared.isdigit() else 413
            await _answer(send, status, _too_large(self.max_body_bytes) if status == 413 else None)
            return
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout)
        except _BodyTooLarge:
            await _answer(send, 413, _too_large(self.max_body_bytes))
            return
        except TimeoutError:
            await _answer(
                send,
                408,
                f"The request body did not arrive within {self.body_timeout:g} s",
            )
            return
        except _ClientLeft:
            return
        environ = _environ(scope, body)
        loop = asyncio.get_running_loop()
        status, headers, content = await loop.run_in_executor(
            self._threads, _run, self._application, environ
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})

    async def _read_body(self, receive: Receive) -> bytes:
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientLeft
            body += message.get("body", b"")
            if len(body) > self.max_body_bytes:
                raise _BodyTooLarge
            if not message.get("more_body", False):
                return bytes(body)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # Requests under way finish; gunicorn's graceful timeout bounds them.
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: self._threads.shutdown(wait=True)
                )
                await send({"type": "lifespan.shutdown.complete"})
                return


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


def _too_large(limit: int) -> str:
    return f"Request body too large: the limit is {limit} bytes"


async def _answer(send: Send, status: int, message: str | None) -> None:
    """An error of this layer, in the API's envelope (clusters/api_errors.py
    has the codes; importing it here would load Django's REST stack before
    the application)."""
    from clusters.api_errors import default_message, envelope

    body = json.dumps(envelope(status, message or default_message(status))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ of a request read whole (PEP 3333): the body with
    its real length, whatever framing it arrived in."""
    script_name = scope.get("root_path", "").encode("utf-8").decode("latin-1")
    path_info = scope["path"].encode("utf-8").decode("latin-1")
    if script_name and path_info.startswith(script_name):
        path_info = path_info[len(script_name) :]
    server = scope.get("server") or ("localhost", 80)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": bytes(scope.get("query_string", b"")).decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1] if server[1] is not None else 80),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = str(scope["client"][0])
    values: defaultdict[str, list[str]] = defaultdict(list)
    for raw_name, raw_value in scope.get("headers", ()):
        name = bytes(raw_name).decode("latin-1").lower()
        if name in ("content-length", "transfer-encoding"):
            continue  # the body is whole: its length is set below
        key = "CONTENT_TYPE" if name == "content-type" else f"HTTP_{name.upper().replace('-', '_')}"
        values[key].append(bytes(raw_value).decode("latin-1"))
    for key, parts in values.items():
        environ[key] = ("; " if key == "HTTP_COOKIE" else ",").join(parts)
    if body or _header(scope, b"content-length") is not None:
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _run(application: WsgiApplication, environ: dict[str, Any]) -> tuple[int, list[Any], bytes]:
    """Call the WSGI application in a pool thread; its whole answer."""
    started: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        started["status"] = int(status.split(" ", 1)[0])
        started["headers"] = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers
        ]
        return lambda data: None  # the legacy write(): Django never calls it

    try:
        result = application(environ, start_response)
        try:
            content = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
    except Exception:
        logger.exception("The application failed outside its own error handling")
        return 500, [(b"content-type", b"text/plain")], b"Internal Server Error"
    return started["status"], started["headers"], content


def application_from_settings() -> BufferedWsgi:
    """The Django application with the bounds the settings name."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxmoxer_site.settings")
    os.environ.setdefault("DJANGO_DEBUG", "0")
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    wsgi_application = get_wsgi_application()
    return BufferedWsgi(
        wsgi_application,
        threads=settings.SERVE_THREADS,
        max_body_bytes=settings.API_MAX_BODY_BYTES,
        body_timeout=settings.REQUEST_BODY_TIMEOUT,
    )
