"""Django project of the proxmoxer cluster registry: settings, URLs, entry points."""
