"""``manage.py clusters``: the registry from the command line.

    manage.py clusters list
    manage.py clusters show <id-or-name>
    manage.py clusters register --name prod --endpoint pve1.example.com --username root@pam
        [--create-token]
    manage.py clusters refresh <id-or-name> | --all [--concurrency N]
    manage.py clusters remove <id-or-name> [--token-owner root@pam]
    manage.py clusters --as alice remove <id-or-name>

Whoever runs it holds the server's database and keys, so by default it acts
as a superuser (``Actor.command_line()``). ``--as <username>`` acts as that
registry account instead: its role decides what it may do (a viewer may list
and show, not remove), and the audit log names it.

Secrets are read from a prompt or from stdin (``--secret-stdin``), never from
the command line, where ``ps`` and shell history would keep them.

It drives the same ClusterService as the REST API, so it only makes sense
with a shared backend (``CLUSTER_REPOSITORY=django``): the memory backend
lives inside the server process and this command runs in its own.

``refresh --all`` runs the background checks' engine (``check_all``, then
``check_due``): concurrently, with a progress bar (tqdm) when stderr is a
terminal, a summary by status and the failures at the end, and exit code 1
when any check failed.
"""

from __future__ import annotations

import getpass
import json
import sys
import time
from collections import Counter
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from clusters import wiring
from clusters.access import actor_of
from clusters.bootstrap import Services
from clusters.domain import (
    Actor,
    Cluster,
    ClusterError,
    ClusterStatus,
    InvalidClusterId,
    RegistrationRequest,
    parse_cluster_id,
    token_owner,
)
from clusters.serializers import cluster_body
from clusters.services import CheckResult, FinishedCheck

# Checks in flight for ``refresh --all`` unless --concurrency says otherwise
# (or PROXMOXER_CHECK_CONCURRENCY is higher): someone is waiting at a
# terminal, and each check is one connection to a different cluster.
BULK_CONCURRENCY = 128


class Command(BaseCommand):
    help = "List, show, register, refresh and remove registered Proxmox VE clusters."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--as",
            dest="as_user",
            metavar="USERNAME",
            help="act as this registry account, with its role (default: as a superuser)",
        )
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="every cluster, by name")
        show = actions.add_parser("show", help="one cluster as JSON")
        show.add_argument("cluster", help="id or name")
        remove = actions.add_parser("remove", help="deregister a cluster")
        remove.add_argument("cluster", help="id or name")
        remove.add_argument(
            "--token-owner",
            help="user@realm owning the API token the registry made (create_token): its "
            "password, prompted for, lets the token be deleted on the cluster",
        )
        remove.add_argument(
            "--secret-stdin",
            action="store_true",
            help="read the token owner's password from the first line of stdin",
        )
        refresh = actions.add_parser("refresh", help="check clusters again")
        target = refresh.add_mutually_exclusive_group(required=True)
        target.add_argument("cluster", nargs="?", help="id or name")
        target.add_argument("--all", action="store_true", help="every registered cluster")
        refresh.add_argument(
            "--concurrency",
            type=int,
            help=f"with --all: checks in flight at once (default {BULK_CONCURRENCY}, or "
            "PROXMOXER_CHECK_CONCURRENCY when higher)",
        )
        register = actions.add_parser("register", help="register a cluster")
        register.add_argument("--name", required=True)
        register.add_argument("--endpoint", required=True, help="e.g. pve1.example.com")
        credentials = register.add_mutually_exclusive_group(required=True)
        credentials.add_argument("--username", help="user@realm; the password is prompted for")
        credentials.add_argument("--token-id", help="user@realm!name; the secret is prompted for")
        register.add_argument(
            "--secret-stdin",
            action="store_true",
            help="read the password or token secret from the first line of stdin",
        )
        register.add_argument("--fingerprint", help="SHA-256 fingerprint to pin")
        register.add_argument("--no-verify-tls", action="store_true")
        register.add_argument(
            "--create-token",
            action="store_true",
            help="with --username: make a read-only API token on the cluster and keep only it",
        )

    def handle(self, *args: Any, action: str, as_user: str | None, **options: Any) -> None:
        if settings.CLUSTER_REPOSITORY == "memory":
            raise CommandError(
                "CLUSTER_REPOSITORY=memory keeps clusters inside the server process; this "
                "command runs in its own process and would see an empty registry. Use "
                "CLUSTER_REPOSITORY=django (see docs/operations.md, 'Storage')."
            )
        self.actor = Actor.command_line() if as_user is None else self._named_actor(as_user)
        try:
            getattr(self, f"_{action}")(wiring.services(), **options)
        except ClusterError as error:
            raise CommandError(error.message) from None

    def _list(self, services: Services, **options: Any) -> None:
        clusters = services.clusters.all_clusters(actor=self.actor)
        for cluster in clusters:
            self.stdout.write(
                f"{cluster.id}  {cluster.name:<24} {cluster.status:<9} "
                f"{cluster.proxmox_version:<8} {cluster.node_count:>3} nodes  "
                f"{cluster.api_endpoint}"
            )
        self.stdout.write(f"{len(clusters)} cluster(s)")

    def _show(self, services: Services, *, cluster: str, **options: Any) -> None:
        found = self._find(services, cluster)
        self.stdout.write(json.dumps(cluster_body(found), indent=2))

    def _remove(self, services: Services, *, cluster: str, **options: Any) -> None:
        found = self._find(services, cluster)
        owner = None
        if options["token_owner"]:
            owner = token_owner(
                options["token_owner"],
                self._secret(f"Password of {options['token_owner']}", options["secret_stdin"]),
            )
        services.clusters.deregister(found.id, actor=self.actor, token_owner=owner)
        self.stdout.write(f"Removed {found.name} ({found.id})")

    def _refresh(
        self,
        services: Services,
        *,
        cluster: str | None,
        all: bool,
        concurrency: int | None,
        **options: Any,
    ) -> None:
        if all:
            self._refresh_all(services, concurrency)
            return
        checked = services.checks.refresh(self._find(services, cluster or "").id, actor=self.actor)
        note = f"  ({checked.last_error})" if checked.last_error else ""
        self.stdout.write(f"{checked.name}: {checked.status}{note}")

    def _refresh_all(self, services: Services, concurrency: int | None) -> None:
        if concurrency is not None and concurrency < 1:
            raise CommandError("--concurrency must be at least 1")
        in_flight = concurrency or max(BULK_CONCURRENCY, settings.PROXMOXER_CHECK_CONCURRENCY)
        registered = len(services.clusters.all_clusters(actor=self.actor))
        started = time.monotonic()
        # disable=None: a bar on a terminal, nothing when stderr is a file or a pipe.
        with tqdm(total=registered, unit="cluster", disable=None, file=sys.stderr) as bar:
            outcomes = services.checks.with_concurrency(in_flight).check_all(
                actor=self.actor, on_checked=lambda outcome: bar.update()
            )
        self._summarise(outcomes, registered, time.monotonic() - started)

    def _summarise(self, outcomes: list[FinishedCheck], registered: int, seconds: float) -> None:
        recorded = [o.cluster for o in outcomes if o.result is CheckResult.RECORDED]
        by_status = Counter(cluster.status for cluster in recorded)
        counts = ", ".join(
            f"{by_status[status]} {status}" for status in ClusterStatus if by_status[status]
        )
        self.stdout.write(
            f"Checked {len(recorded)} of {registered} cluster(s) in {seconds:.1f} s"
            + (f": {counts}" if counts else "")
        )
        dropped = sum(1 for o in outcomes if o.result is CheckResult.DROPPED)
        if dropped:
            self.stdout.write(f"{dropped} check(s) dropped: edited or removed meanwhile")
        elsewhere = registered - len(outcomes)
        if elsewhere > 0:
            self.stdout.write(
                f"{elsewhere} cluster(s) not checked here: being checked elsewhere, or "
                "registered or removed during the run"
            )
        failures = sorted(
            ((o.cluster.name, o.problem) for o in outcomes if o.problem is not None),
            key=lambda failure: failure[0].casefold(),
        )
        if failures:
            self.stdout.write(f"Failures ({len(failures)}):")
            for name, problem in failures:
                self.stdout.write(f"  {name}: {problem}")
            raise CommandError(f"{len(failures)} of {len(outcomes)} check(s) failed")

    def _register(self, services: Services, **options: Any) -> None:
        label = "Password" if options["username"] else "Token secret"
        secret = self._secret(
            f"{label} of {options['username'] or options['token_id']}", options["secret_stdin"]
        )
        request = RegistrationRequest(
            name=options["name"],
            api_endpoint=options["endpoint"],
            username=options["username"],
            password=secret if options["username"] else None,
            token_id=options["token_id"],
            token_secret=secret if options["token_id"] else None,
            verify_tls=not options["no_verify_tls"],
            fingerprint=options["fingerprint"],
            create_token=options["create_token"],
        )
        cluster = services.clusters.register(request, actor=self.actor)
        self.stdout.write(
            f"Registered {cluster.name} ({cluster.id}): {cluster.status}, "
            f"PVE {cluster.proxmox_version}, {cluster.node_count} node(s)"
        )

    @staticmethod
    def _named_actor(username: str) -> Actor:
        user_model = get_user_model()
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        if user is None or not user.is_active:
            raise CommandError(f"No active account named {username!r} (--as)")
        return actor_of(user)

    @staticmethod
    def _secret(prompt: str, from_stdin: bool) -> str:
        if from_stdin:
            return sys.stdin.readline().rstrip("\r\n")
        return getpass.getpass(f"{prompt}: ")

    def _find(self, services: Services, id_or_name: str) -> Cluster:
        try:
            return services.clusters.get_cluster(parse_cluster_id(id_or_name), actor=self.actor)
        except InvalidClusterId:
            return services.clusters.get_cluster_by_name(id_or_name, actor=self.actor)
