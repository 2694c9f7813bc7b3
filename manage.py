#!/usr/bin/env python
"""Django's command-line utility for the proxmoxer service."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proxmoxer_site.settings")
    # Development unless told otherwise, so `manage.py runserver` works as it is;
    # the WSGI/ASGI entry points default to production instead.
    os.environ.setdefault("DJANGO_DEBUG", "1")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
