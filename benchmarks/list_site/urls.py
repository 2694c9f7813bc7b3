"""The project's routes, plus ``/bench/prebuilt``: a bare DRF view that
answers each query string with a body prebuilt from the real list's answer
to it (``BENCH_BODIES``, a JSON file the benchmark writes). It has the
project's default authentication, permission, throttling and renderer, and
nothing else: the floor the list is measured against."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from proxmoxer_site.urls import urlpatterns as project_urlpatterns

_bodies: dict[str, Any] | None = None
_lock = threading.Lock()


def _prebuilt() -> dict[str, Any]:
    """Read once per process, at the first request (the benchmark writes the
    file after the server has started, from the real list's answers)."""
    global _bodies
    with _lock:
        if _bodies is None:
            with open(os.environ["BENCH_BODIES"], encoding="utf-8") as file:
                _bodies = json.load(file)
        return _bodies


class PrebuiltList(APIView):
    def get(self, request: Request) -> Response:
        return Response(_prebuilt()[request.META.get("QUERY_STRING", "")])


urlpatterns = [path("bench/prebuilt", PrebuiltList.as_view()), *project_urlpatterns]
