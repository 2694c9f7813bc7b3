"""What differs between the PVE releases the simulator plays: ``pve7``,
``pve8`` (the default) and ``pve9``.

Only what a client can see is modelled, each from Proxmox's own sources:

- ``/version``'s numbers (PVE 7 still used ``7.4-13``-style package versions).
- Where an error's text goes. Up to libpve-http-server-perl 5.1 the message
  is the HTTP reason phrase alone; from 5.2.0 (January 2025, PVE 8.3 and
  later, so every PVE 9) the JSON formatter also puts it into the body as
  ``message`` (proxmox/pve-http-server, src/PVE/APIServer/Formatter/Standard.pm,
  ``prepare_response_data``: "fix #6503").
- How a refused API token or ticket is worded. pve-manager 9.1.5 (January
  2026) catches every verify_token / verify_ticket error and answers
  ``Authentication failed!`` instead of the detail ("invalid token value!",
  "permission denied - invalid PVE ticket", ...); ``No ticket`` and the CSRF
  refusal are unchanged (proxmox/pve-manager, PVE/HTTPServer.pm,
  ``auth_handler``, commit "http server: unify error message in case of auth
  failure").
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    version: MappingProxyType[str, str]
    message_in_body: bool  # error text also as "message" in the JSON body
    unified_auth_failure: bool  # refused tokens and tickets: "Authentication failed!"

    def version_data(self, console: str | None = None) -> dict[str, Any]:
        """``GET /version``'s data. ``console`` comes from datacenter.cfg and is
        there only when an administrator set it (PVE/API2.pm, ``version``)."""
        data: dict[str, Any] = dict(self.version)
        if console:
            data["console"] = console
        return data


def _version(version: str, release: str, repoid: str) -> MappingProxyType[str, str]:
    return MappingProxyType({"version": version, "release": release, "repoid": repoid})


PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        Profile(
            "pve7",
            "PVE 7.4-13: errors in the reason phrase only",
            _version("7.4-13", "7.4", "6f2f0a33"),
            message_in_body=False,
            unified_auth_failure=False,
        ),
        Profile(
            "pve8",
            "PVE 8.2.4: errors in the reason phrase only",
            _version("8.2.4", "8.2", "faa83925c9641325"),
            message_in_body=False,
            unified_auth_failure=False,
        ),
        Profile(
            "pve9",
            "PVE 9.1.7: errors also as 'message' in the body, refused tokens and tickets "
            "'Authentication failed!'",
            _version("9.1.7", "9.1", "16b139a0c21d3e05"),
            message_in_body=True,
            unified_auth_failure=True,
        ),
    )
}

DEFAULT_PROFILE = "pve8"
CONSOLES = ("applet", "vv", "html5", "xtermjs")  # /version's enum for "console"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; KeyError lists the choices."""
    key = name.strip().lower()
    try:
        return PROFILES[key]
    except KeyError:
        raise KeyError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
