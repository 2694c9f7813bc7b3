"""A background check of a 3-node cluster whose registered node's API is
gone (docs/operations.md, "Endpoints and failover"; figures in
docs/benchmarks.md, "Failover").

A simulated 3-node cluster (``PveSimulator(nodes=3)``, one listener per node
on 127.0.32.1-3, in a process of its own) is registered through
``ClusterService`` with the real ``ProxmoxClient``, which learns the other
two nodes' endpoints, and is then checked by ``CheckService.check_due`` as
the background engine checks it (the kept ticket, ``attempt_order``), on
in-memory storage. Each check is timed from the claim to its recorded
findings. Two scenarios, each from a fresh registration, store and client:

- *refused*: the registered node is stopped, so connecting to it is
  refused. The first check after that passes over it to node 2 (and logs
  in there: tickets are kept per endpoint); the following ones try node 2
  first, since it answered last and node 1 failed within 5 minutes.
- *black-holed*: the registered node's address takes connections and
  never answers them (a listener whose backlog is full: the kernel drops
  each SYN), so the first check waits the connect timeout before node 2.

Expected, and checked: every check answers through the expected node; a
refused node costs less than the connect timeout; a black-holed one about
the connect timeout (at most ``BLACKHOLE_SLACK`` over), never more than the
check budget; the checks after the first cost what a healthy cluster's do
(median at most ``FOLLOWING_RATIO`` times the baseline's). Exits 1 when one
of these is missed.

    .venv/bin/python benchmarks/bench_failover.py [--rounds 7] [--checks 30]
        [--connect-timeout 1] [--latency 0]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusters.bootstrap import Services, bootstrap
from clusters.domain import Actor, CheckSchedule, Cluster, RegistrationRequest
from clusters.proxmox import ProxmoxClient
from clusters.repositories.memory import InMemoryUnitOfWork
from clusters.services import CheckResult
from pve_simulator.server import PveSimulator

NETWORK = "127.0.32"  # the simulated nodes' addresses: 127.0.32.1, .2, .3
REGISTERED, SECOND = "pve1", "pve2"
READ_TIMEOUT = 10.0  # the product's default
BLACKHOLE_SLACK = 0.5  # seconds a black-holed first check may take beyond the connect timeout
FOLLOWING_RATIO = 1.5  # the checks after the first, against the healthy baseline (medians)
# Every check is due again at once; a claim outlasts any check (the budget).
SCHEDULE = CheckSchedule(interval=timedelta(milliseconds=1), lease=timedelta(minutes=5), jitter=0)


# -- the simulated cluster, in a process of its own ------------------------------------


class _BlackHole:
    """A node's address that takes no connection and refuses none: a
    listener with a backlog of 0, filled by connections never accepted, so
    the kernel drops every further SYN and a client waits its connect
    timeout, as for a host whose packets are dropped."""

    def __init__(self, host: str, port: int) -> None:
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, port))
        self._listener.listen(0)
        self._fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex((host, port))
            self._fillers.append(filler)
        time.sleep(0.1)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            if probe.connect_ex((host, port)) == 0:
                raise RuntimeError(f"{host}:{port} still takes connections")
        except TimeoutError:
            pass  # the SYN was dropped: a black hole
        finally:
            probe.close()

    def close(self) -> None:
        for filler in self._fillers:
            filler.close()
        self._listener.close()


def _serve(pipe: Connection, latency: float) -> None:
    with PveSimulator(nodes=3, node_network=NETWORK, latency=latency) as simulator:
        pipe.send(
            {
                "url": simulator.url,
                "fingerprint": simulator.fingerprint,
                "username": simulator.username,
                "password": simulator.password,
                "urls": {node.name: simulator.url_for(node.hosts[0]) for node in simulator.nodes},
            }
        )
        holes: dict[str, _BlackHole] = {}
        while (request := pipe.recv()) is not None:
            action, name = request
            if action == "stop":
                simulator.stop_node(name)
            elif action == "blackhole":
                simulator.stop_node(name)
                holes[name] = _BlackHole(simulator.node(name).hosts[0], simulator.port)
            elif action == "start":
                if name in holes:
                    holes.pop(name).close()
                simulator.start_node(name)
            elif action == "logins":
                pipe.send(simulator.counts()["logins"])
                continue
            pipe.send(action)


class SimulatorProcess:
    """The simulated cluster in a process of its own, like a cluster on
    other machines: in-thread, its TLS and HTTP work would compete with the
    checks for the interpreter lock and count as theirs."""

    def __init__(self, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, latency), daemon=True)
        self._process.start()
        started = self._pipe.recv()
        self.url: str = started["url"]
        self.fingerprint: str = started["fingerprint"]
        self.username: str = started["username"]
        self.password: str = started["password"]
        self.urls: dict[str, str] = started["urls"]

    def ask(self, action: str, name: str = "") -> Any:
        self._pipe.send((action, name))
        return self._pipe.recv()

    def stop(self) -> None:
        self._pipe.send(None)
        self._process.join(timeout=10)


# -- checks ------------------------------------------------------------------------------


@dataclass
class Timed:
    seconds: list[float] = field(default_factory=list)
    logins: int = 0


@dataclass
class Scenario:
    name: str
    action: str  # what the simulator does to the registered node
    done: str  # the same, for the table
    baseline: Timed = field(default_factory=Timed)
    first: Timed = field(default_factory=Timed)
    following: Timed = field(default_factory=Timed)
    wrong: list[str] = field(default_factory=list)


def _answered_through(cluster: Cluster) -> str | None:
    """The endpoint the cluster's last check got its answer through."""
    for url, health in cluster.endpoint_health.items():
        if health.last_ok_at is not None and health.last_ok_at == cluster.last_checked_at:
            return url
    return None


def _check(
    services: Services, simulator: SimulatorProcess, into: Timed, expected: str, scenario: Scenario
) -> None:
    logins = simulator.ask("logins")
    time.sleep(2 * SCHEDULE.interval.total_seconds())  # due again
    started = time.perf_counter()
    [finished] = services.checks.check_due(limit=1)
    into.seconds.append(time.perf_counter() - started)
    into.logins += simulator.ask("logins") - logins
    through = _answered_through(finished.cluster)
    if finished.result is not CheckResult.RECORDED or through != simulator.urls[expected]:
        scenario.wrong.append(
            f"{finished.result}, answered through {through} (expected {expected}): "
            f"{finished.cluster.status}, {finished.cluster.last_error}"
        )


def run_scenario(
    scenario: Scenario, simulator: SimulatorProcess, client: ProxmoxClient, checks: int, name: str
) -> None:
    services = bootstrap(
        unit_of_work=InMemoryUnitOfWork.factory(), proxmox=client, schedule=SCHEDULE
    )
    cluster = services.clusters.register(
        RegistrationRequest(
            name=name,
            api_endpoint=simulator.url,
            fingerprint=simulator.fingerprint,
            username=simulator.username,
            password=simulator.password,
        ),
        actor=Actor.command_line("benchmark"),
    )
    if len(cluster.endpoints) != 2:
        sys.exit(f"registration learned {len(cluster.endpoints)} endpoints, not 2")
    warm_up = Timed()
    for _ in range(2):
        _check(services, simulator, warm_up, REGISTERED, scenario)
    for _ in range(checks):
        _check(services, simulator, scenario.baseline, REGISTERED, scenario)
    simulator.ask(scenario.action, REGISTERED)
    try:
        _check(services, simulator, scenario.first, SECOND, scenario)
        for _ in range(checks):
            _check(services, simulator, scenario.following, SECOND, scenario)
    finally:
        simulator.ask("start", REGISTERED)


# -- the table -------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="fresh registrations per scenario")
    parser.add_argument("--checks", type=int, default=30, help="checks per phase and round")
    parser.add_argument("--connect-timeout", type=float, default=1.0)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per API request")
    options = parser.parse_args()
    # A failing endpoint is logged by the check as it would be in production;
    # here it is expected, and the table says what happened.
    logging.getLogger("clusters").addHandler(logging.NullHandler())
    logging.getLogger("clusters").propagate = False

    scenarios = [
        Scenario("refused", "stop", "stopped"),
        Scenario("black-holed", "blackhole", "black-holed"),
    ]
    load_before = os.getloadavg()
    simulator = SimulatorProcess(options.latency)
    budget = 0.0
    try:
        for round_number in range(options.rounds):
            for scenario in scenarios:
                # No kept tickets: every round's failover logs in on node 2.
                client = ProxmoxClient(
                    connect_timeout=options.connect_timeout, read_timeout=READ_TIMEOUT
                )
                budget = client.check_budget
                run_scenario(
                    scenario, simulator, client, options.checks, f"failover-{round_number}"
                )
    finally:
        simulator.stop()
    load_after = os.getloadavg()

    print(
        f"Python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(
        f"3-node simulated cluster ({NETWORK}.1-3, its own process, "
        f"{options.latency * 1000:g} ms per request), password credentials; "
        f"connect timeout {options.connect_timeout:g} s, read timeout {READ_TIMEOUT:g} s, "
        f"check budget {budget:g} s; {options.rounds} rounds, each a fresh registration, "
        f"{options.checks} checks per phase"
    )
    print()
    header = (
        f"{'scenario':<13}{'phase':<44}{'checks':>7}{'median':>11}{'min':>11}{'max':>11}"
        f"{'logins':>8}"
    )
    print(header)
    print("-" * len(header))
    met = True
    verdicts: list[str] = []
    for scenario in scenarios:
        phases = [
            ("healthy: every node answers (baseline)", scenario.baseline),
            (f"first check after node 1 {scenario.done}", scenario.first),
            ("following checks, node 1 still down", scenario.following),
        ]
        for label, timed in phases:
            print(
                f"{scenario.name:<13}{label:<44}{len(timed.seconds):>7}"
                f"{_ms(statistics.median(timed.seconds)):>11}{_ms(min(timed.seconds)):>11}"
                f"{_ms(max(timed.seconds)):>11}{timed.logins:>8}"
            )
        baseline = statistics.median(scenario.baseline.seconds)
        first = statistics.median(scenario.first.seconds)
        following = statistics.median(scenario.following.seconds)
        slowest = max(scenario.first.seconds + scenario.following.seconds)
        ratio = following / baseline
        ok = ratio <= FOLLOWING_RATIO
        verdicts.append(
            f"{scenario.name}: following checks {ratio:.2f}x the baseline "
            f"(target <= {FOLLOWING_RATIO:g}x){'' if ok else '  MISSED'}"
        )
        met &= ok
        if scenario.action == "stop":
            ok = first < options.connect_timeout
            verdicts.append(
                f"{scenario.name}: first check {_ms(first)}, no connect timeout waited "
                f"(< {options.connect_timeout:g} s){'' if ok else '  MISSED'}"
            )
        else:
            over = first - options.connect_timeout
            ok = 0 <= over <= BLACKHOLE_SLACK
            verdicts.append(
                f"{scenario.name}: first check {_ms(first)} = the connect timeout + {_ms(over)} "
                f"(target 0-{BLACKHOLE_SLACK * 1000:g} ms over){'' if ok else '  MISSED'}"
            )
        met &= ok
        ok = slowest < budget
        verdicts.append(
            f"{scenario.name}: slowest check {_ms(slowest)} within the check budget "
            f"({budget:g} s){'' if ok else '  MISSED'}"
        )
        met &= ok
        for problem in scenario.wrong[:5]:
            verdicts.append(f"{scenario.name}: WRONG {problem}")
        met &= not scenario.wrong
    print()
    for verdict in verdicts:
        print(verdict)
    print()
    print("every target met" if met else "a target was missed (see above)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
