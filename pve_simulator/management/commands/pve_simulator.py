"""``python manage.py pve_simulator``: serve a simulated Proxmox VE API on
loopback and print how to register it (URL, credentials, fingerprint)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pve_simulator.certificates import ca_signed_certificate, self_signed_certificate
from pve_simulator.scenarios import SCENARIOS
from pve_simulator.server import CONTROL_PATH, PveSimulator


class Command(BaseCommand):
    help = (
        "Serve a simulated Proxmox VE API over HTTPS on loopback (self-signed certificate "
        "by default) and print its URL, credentials and certificate fingerprint."
    )
    requires_system_checks: list[str] = []  # needs no database, no migrations

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--scenario",
            default="healthy",
            help=f"what the simulated cluster does: {', '.join(SCENARIOS)} (default: healthy)",
        )
        parser.add_argument(
            "--host",
            action="append",
            dest="hosts",
            metavar="ADDRESS",
            help="loopback address to listen on; repeatable (default: 127.0.0.1 and ::1)",
        )
        parser.add_argument(
            "--port", type=int, default=8006, help="TCP port, 0 for any free one (default: 8006)"
        )
        parser.add_argument(
            "--ca-file",
            type=Path,
            help="sign the certificate with a freshly generated CA and write the CA's PEM here "
            "(for PROXMOX_CA_BUNDLE)",
        )
        parser.add_argument("--password", help="password of root@pam (default: random)")
        parser.add_argument(
            "--token-secret", help="secret of the API token root@pam!proxmoxer (default: random)"
        )
        parser.add_argument(
            "--auth-failure-delay",
            type=float,
            default=3.0,
            help="seconds every 401 waits, as PVE does (default: 3)",
        )
        parser.add_argument(
            "--latency", type=float, default=0.0, help="seconds added to every API request"
        )
        parser.add_argument(
            "--connect-latency",
            type=float,
            default=0.0,
            help="seconds added to every new connection (TCP and TLS set-up)",
        )
        parser.add_argument(
            "--slow-delay",
            type=float,
            default=30.0,
            help="seconds the 'slow' scenario waits before answering (default: 30)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["ca_file"] is not None:
            certificate = ca_signed_certificate()
            assert certificate.ca_pem is not None
            try:
                options["ca_file"].write_bytes(certificate.ca_pem)
            except OSError as error:
                raise CommandError(f"cannot write the CA certificate: {error}") from None
        else:
            certificate = self_signed_certificate()
        try:
            simulator = PveSimulator(
                scenario=options["scenario"],
                hosts=options["hosts"],
                port=options["port"],
                certificate=certificate,
                password=options["password"],
                token_secret=options["token_secret"],
                auth_failure_delay=options["auth_failure_delay"],
                latency=options["latency"],
                connect_latency=options["connect_latency"],
                slow_delay=options["slow_delay"],
                log=self._log,
            ).start()
        except KeyError as error:
            raise CommandError(str(error).strip("\"'")) from None
        except (ValueError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self._banner(simulator, options["ca_file"]))
        self.stdout.flush()
        simulator.serve_until_interrupted()

    def _log(self, line: str) -> None:
        sys.stderr.write(f"[pve-simulator] {line}\n")

    @staticmethod
    def _banner(simulator: PveSimulator, ca_file: Path | None) -> str:
        url = simulator.url
        others = ", ".join(simulator.url_for(host) for host in simulator.hosts[1:])
        register = {
            "name": "simulator",
            "api_endpoint": url,
            "token_id": simulator.token_id,
            "token_secret": simulator.token_secret,
            "fingerprint": simulator.fingerprint,
        }
        switch = json.dumps({"scenario": "degraded"})
        lines = [
            "",
            f"Proxmox VE simulator, scenario {simulator.scenario.name}: "
            f"{simulator.scenario.description}",
            "",
            f"  URL           {url}" + (f"  (also {others})" if others else ""),
            f"  Fingerprint   {simulator.fingerprint}",
            f"  User          {simulator.username}",
            f"  Password      {simulator.password}",
            f"  API token id  {simulator.token_id}",
            f"  Token secret  {simulator.token_secret}",
        ]
        if ca_file is not None:
            lines.append(f"  CA file       {ca_file}  (PROXMOX_CA_BUNDLE={ca_file})")
        lines += [
            "",
            "Register it (with make run serving, and the API token it printed):",
            "  curl -sS http://127.0.0.1:8000/api/v1/clusters -H 'Authorization: Token <token>' \\",
            "       -H 'Content-Type: application/json' -d " + shlex.quote(json.dumps(register)),
            "",
            "Switch the scenario while it runs:",
            f"  curl -sk -X PUT {url}{CONTROL_PATH} -d {shlex.quote(switch)}",
            f"  scenarios: {', '.join(SCENARIOS)}",
            "",
            "Ctrl-C stops it. These credentials and this certificate exist only until then.",
            "",
        ]
        return "\n".join(lines)
