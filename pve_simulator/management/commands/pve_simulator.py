"""``python manage.py pve_simulator``: serve a simulated Proxmox VE API on
loopback and print how to register it (URL, credentials, fingerprint).

Modes: one node (the default), a multi-node cluster (``--nodes 3``), a
reverse proxy in front (``--proxy``) and many clusters at once
(``--clusters 1000``). The credentials printed are the simulator's own,
made up at start (or chosen with ``--password``/``--token-secret``)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pve_simulator.access import ROLES, TICKET_LIFETIME
from pve_simulator.certificates import ca_signed_certificate, self_signed_certificate
from pve_simulator.fleet import VirtualClusters
from pve_simulator.profiles import DEFAULT_PROFILE, PROFILES
from pve_simulator.proxy import ReverseProxy
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
            "--profile",
            default=DEFAULT_PROFILE,
            choices=sorted(PROFILES),
            help=f"which PVE release answers (default: {DEFAULT_PROFILE})",
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
            "--nodes",
            type=int,
            help="multi-node mode: this many nodes, each on its own address of --node-network "
            "and the same port, each with its own certificate",
        )
        parser.add_argument(
            "--node-network",
            default="127.0.10",
            help="first three octets of the nodes' addresses (default: 127.0.10 → 127.0.10.1, …)",
        )
        parser.add_argument(
            "--clusters",
            type=int,
            help="serve this many independent clusters, one per address of --cluster-network",
        )
        parser.add_argument(
            "--cluster-network",
            default="127.1",
            help="first two octets of the clusters' addresses (default: 127.1 → 127.1.0.1, …)",
        )
        parser.add_argument(
            "--separate-credentials",
            action="store_true",
            help="with --clusters: every cluster has its own password and token secret",
        )
        parser.add_argument(
            "--proxy",
            action="store_true",
            help="also serve an HTTPS reverse proxy in front of the cluster",
        )
        parser.add_argument("--proxy-host", default="127.0.0.1", help="the proxy's address")
        parser.add_argument(
            "--proxy-port", type=int, default=0, help="the proxy's port (443 works as root)"
        )
        parser.add_argument(
            "--proxy-prefix", default="", help="path the proxy serves the API under, e.g. /pve"
        )
        parser.add_argument(
            "--proxy-standard-reasons",
            action="store_true",
            help="the proxy replaces PVE's reason phrases by the standard ones",
        )
        parser.add_argument(
            "--ca-file",
            type=Path,
            help="sign the certificate with a freshly generated CA and write the CA's PEM here "
            "(for PROXMOX_CA_BUNDLE; one-node mode)",
        )
        parser.add_argument("--username", default="root@pam", help="the login account")
        parser.add_argument(
            "--role",
            default="Administrator",
            help="the account's role on / (propagated), or 'none' for no privilege; one of "
            f"{', '.join(sorted(ROLES))} (default: Administrator)",
        )
        parser.add_argument("--password", help="the account's password (default: random)")
        parser.add_argument(
            "--token-secret", help="secret of the account's API token !proxmoxer (default: random)"
        )
        parser.add_argument(
            "--ticket-lifetime",
            type=float,
            default=TICKET_LIFETIME,
            help="seconds a ticket stays valid (default: 7200, as PVE)",
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
        settings: dict[str, Any] = {
            "scenario": options["scenario"],
            "profile": options["profile"],
            "username": options["username"],
            "roles": options["role"],
            "password": options["password"],
            "token_secret": options["token_secret"],
            "ticket_lifetime": options["ticket_lifetime"],
            "auth_failure_delay": options["auth_failure_delay"],
            "latency": options["latency"],
            "connect_latency": options["connect_latency"],
            "slow_delay": options["slow_delay"],
            "log": self._log,
        }
        if options["clusters"] is not None and (options["nodes"] or options["proxy"]):
            raise CommandError("--clusters cannot be combined with --nodes or --proxy")
        if options["ca_file"] is not None and (options["nodes"] or options["clusters"]):
            raise CommandError("--ca-file is for one-node mode")
        try:
            if options["clusters"] is not None:
                fleet = self._fleet(options, settings)
                self.stdout.write(self._fleet_banner(fleet, options["separate_credentials"]))
                self.stdout.flush()
                fleet.clusters[0].serve_until_interrupted()
                return
            simulator = self._simulator(options, settings).start()
            proxy = None
            if options["proxy"]:
                proxy = ReverseProxy(
                    simulator,
                    host=options["proxy_host"],
                    port=options["proxy_port"],
                    prefix=options["proxy_prefix"],
                    standard_reasons=options["proxy_standard_reasons"],
                ).start()
        except KeyError as error:
            raise CommandError(str(error).strip("\"'")) from None
        except (ValueError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self._banner(simulator, options["ca_file"], proxy))
        self.stdout.flush()
        try:
            simulator.serve_until_interrupted()
        finally:
            if proxy is not None:
                proxy.stop()

    def _simulator(self, options: dict[str, Any], settings: dict[str, Any]) -> PveSimulator:
        if options["ca_file"] is not None:
            certificate = ca_signed_certificate(options["hosts"] or ())
            assert certificate.ca_pem is not None
            try:
                options["ca_file"].write_bytes(certificate.ca_pem)
            except OSError as error:
                raise CommandError(f"cannot write the CA certificate: {error}") from None
        else:
            certificate = (
                None if options["nodes"] else self_signed_certificate(options["hosts"] or ())
            )
        if options["nodes"] is not None:
            if options["hosts"]:
                raise CommandError("--host and --nodes exclude each other")
            return PveSimulator(
                nodes=options["nodes"],
                node_network=options["node_network"],
                port=options["port"],
                **settings,
            )
        return PveSimulator(
            hosts=options["hosts"], port=options["port"], certificate=certificate, **settings
        )

    def _fleet(self, options: dict[str, Any], settings: dict[str, Any]) -> VirtualClusters:
        log = settings.pop("log")
        return VirtualClusters(
            options["clusters"],
            port=options["port"],
            network=options["cluster_network"],
            shared_credentials=not options["separate_credentials"],
            log=log,
            **settings,
        ).start()

    def _log(self, line: str) -> None:
        sys.stderr.write(f"[pve-simulator] {line}\n")

    @staticmethod
    def _credentials(simulator: PveSimulator) -> list[str]:
        return [
            f"  User          {simulator.username}",
            f"  Password      {simulator.password}",
            f"  API token id  {simulator.token_id}",
            f"  Token secret  {simulator.token_secret}",
        ]

    @classmethod
    def _banner(
        cls, simulator: PveSimulator, ca_file: Path | None, proxy: ReverseProxy | None
    ) -> str:
        url = simulator.url
        others = ", ".join(simulator.url_for(host) for host in simulator.nodes[0].hosts[1:])
        register = {
            "name": "simulator",
            "api_endpoint": proxy.url if proxy is not None else url,
            "token_id": simulator.token_id,
            "token_secret": simulator.token_secret,
            "fingerprint": proxy.fingerprint if proxy is not None else simulator.fingerprint,
        }
        switch = json.dumps({"scenario": "degraded"})
        lines = [
            "",
            f"Proxmox VE simulator, profile {simulator.profile.name} "
            f"({simulator.profile.version['version']}), scenario {simulator.scenario.name}: "
            f"{simulator.scenario.description}",
            "",
            f"  URL           {url}" + (f"  (also {others})" if others else ""),
            f"  Fingerprint   {simulator.fingerprint}",
        ]
        if simulator.multi_node:
            for node in simulator.nodes:
                lines.append(
                    f"  Node {node.name:<8} {simulator.url_for(node.hosts[0])}  {node.fingerprint}"
                )
        if proxy is not None:
            lines.append(f"  Proxy URL     {proxy.url}")
            lines.append(f"  Proxy fingerprint {proxy.fingerprint}")
        lines += cls._credentials(simulator)
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
            f"  profiles:  {', '.join(PROFILES)}",
        ]
        if simulator.multi_node:
            name = simulator.nodes[-1].name
            lines += [
                "Stop a node (start it again with true):",
                f"  curl -sk -X PUT {url}{CONTROL_PATH}/nodes/{name} -d '{{\"running\": false}}'",
            ]
        lines += [
            "",
            "Ctrl-C stops it. These credentials and this certificate exist only until then.",
            "",
        ]
        return "\n".join(lines)

    @classmethod
    def _fleet_banner(cls, fleet: VirtualClusters, separate: bool) -> str:
        first = fleet.clusters[0]
        lines = [
            "",
            f"Proxmox VE simulator: {len(fleet)} clusters, profile {first.profile.name}, "
            f"scenario {first.scenario.name}, port {fleet.port}",
            "",
        ]
        if not separate:
            lines += ["Every cluster has these credentials:", *cls._credentials(first), ""]
        lines.append("  Cluster   URL                          Fingerprint")
        for cluster in fleet.clusters:
            lines.append(f"  {cluster.cluster_name:<9} {cluster.url:<28} {cluster.fingerprint}")
            if separate:
                lines += [f"  {line.strip()}" for line in cls._credentials(cluster)]
        lines += [
            "",
            "Logins and reads per cluster (DELETE resets them):",
            f"  curl -sk {first.url}{CONTROL_PATH}/counts",
            "",
            "Ctrl-C stops it. These credentials and these certificates exist only until then.",
            "",
        ]
        return "\n".join(lines)
