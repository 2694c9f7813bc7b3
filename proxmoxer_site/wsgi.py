"""WSGI entry point (gunicorn). Production unless told otherwise: DJANGO_DEBUG=0."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxmoxer_site.settings")
os.environ.setdefault("DJANGO_DEBUG", "0")

application = get_wsgi_application()

# PROXMOXER_MONITOR=embedded: this process checks clusters too (clusters/monitor.py).
from clusters.monitor import start_if_embedded  # noqa: E402 - needs the apps loaded

start_if_embedded()
