"""Registration latency: sequential vs parallel reads after login.

Registers clusters through the registration use case with the real ProxmoxClient against
the PVE simulator (its own process, HTTPS on loopback, pinned certificate), with
latency added to stand in for the network: first to every API request only,
then also to every new connection. A password registration is one login plus
the version, cluster status and nodes reads: four round trips when the reads
go one after the other on one connection (``parallel=False``), two when they
go out together. The parallel reads need a connection each, which the client
opens while the login is under way. Target: parallel/sequential <= 0.70
with latency per request (1/2 at best); with connection set-up costs too, the
login's own connection bounds it at 2/3 (4 round trips against 6).

    .venv/bin/python benchmarks/bench_registration_latency.py [--latency 0.05] [--rounds 30]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clusters.bootstrap import bootstrap
from clusters.domain import Actor, RegistrationRequest
from clusters.proxmox import ProxmoxClient
from clusters.repositories.memory import InMemoryUnitOfWork
from pve_simulator.server import PveSimulator

TARGET_RATIO = 0.70
REGRESSION_RATIO = 0.75


def _serve(pipe: Connection, latency: float) -> None:
    """The simulator's process: answers setting changes until told to stop."""
    with PveSimulator(hosts=["127.0.0.1"], latency=latency) as simulator:
        pipe.send(
            {
                "url": simulator.url,
                "fingerprint": simulator.fingerprint,
                "username": simulator.username,
                "password": simulator.password,
                "token_id": simulator.token_id,
                "token_secret": simulator.token_secret,
            }
        )
        while (settings := pipe.recv()) is not None:
            simulator.configure(**settings)
            pipe.send("configured")


@dataclass
class SimulatorProcess:
    """The simulator in a process of its own, like a cluster on another
    machine: in-thread, its TLS and HTTP work would compete with the client
    for this process's interpreter lock and count as the client's time."""

    latency: float

    def __enter__(self) -> SimulatorProcess:
        self._pipe, child = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(child, self.latency), daemon=True
        )
        self._process.start()
        for key, value in self._pipe.recv().items():
            setattr(self, key, value)
        return self

    def configure(self, **settings: Any) -> None:
        self._pipe.send(settings)
        self._pipe.recv()

    def __exit__(self, *exc_info: object) -> None:
        self._pipe.send(None)
        self._process.join(timeout=10)


def registrar(
    simulator: SimulatorProcess, *, parallel: bool, token: bool
) -> Callable[[str], float]:
    """A function that registers one cluster and returns the seconds it took."""
    services = bootstrap(
        unit_of_work=InMemoryUnitOfWork.factory(),
        proxmox=ProxmoxClient(parallel=parallel, connect_timeout=5, read_timeout=10),
    )
    actor = Actor.command_line("benchmark")
    credentials = (
        {"token_id": simulator.token_id, "token_secret": simulator.token_secret}
        if token
        else {"username": simulator.username, "password": simulator.password}
    )

    def register(name: str) -> float:
        request = RegistrationRequest(
            name=name,
            api_endpoint=simulator.url,
            fingerprint=simulator.fingerprint,
            **credentials,
        )
        started = time.perf_counter()
        services.clusters.register(request, actor=actor)
        return time.perf_counter() - started

    return register


def measure(simulator: SimulatorProcess, rounds: int, *, token: bool) -> dict[str, list[float]]:
    modes = {
        "sequential": registrar(simulator, parallel=False, token=token),
        "parallel": registrar(simulator, parallel=True, token=token),
    }
    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    for mode, register in modes.items():  # warm-up: imports, first contexts
        register(f"warm-up-{mode}")
    for index in range(rounds):  # interleaved, so drift hits both modes alike
        for mode, register in modes.items():
            timings[mode].append(register(f"{mode}-{index}"))
    return timings


def report(title: str, results: dict[str, dict[str, list[float]]]) -> float:
    """Print one table; return the password registration's parallel/sequential ratio."""
    print(title)
    header = f"{'credentials':<12} {'reads':<11} {'median':>9} {'mean':>9} {'min':>9} {'max':>9}"
    print(header)
    print("-" * len(header))
    ratios = {}
    for kind, timings in results.items():
        for mode, values in timings.items():
            ms = [value * 1000 for value in values]
            figures = (statistics.median(ms), statistics.mean(ms), min(ms), max(ms))
            print(f"{kind:<12} {mode:<11} " + " ".join(f"{value:>7.1f}ms" for value in figures))
        ratios[kind] = statistics.median(timings["parallel"]) / statistics.median(
            timings["sequential"]
        )
    for kind, ratio in ratios.items():
        print(f"parallel/sequential, {kind} (medians): {ratio:.2f}")
    print()
    return ratios["password"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per API request")
    parser.add_argument("--rounds", type=int, default=30, help="registrations per mode")
    args = parser.parse_args()
    latency = args.latency

    models = {
        f"{latency * 1000:g} ms added to every API request": 0.0,
        # TCP and TLS 1.3 each cost a round trip before a new connection's
        # first request: what a fresh connection for the parallel read pays.
        f"{latency * 1000:g} ms per API request and {2 * latency * 1000:g} ms per new "
        "connection (TCP + TLS handshakes)": 2 * latency,
    }
    print(
        f"Registration latency against the PVE simulator (its own process, pinned TLS on "
        f"loopback), "
        f"{args.rounds} registrations per mode; sequential = ProxmoxClient(parallel=False)\n"
    )
    ratios = []
    with SimulatorProcess(latency=latency) as simulator:
        for title, connect_latency in models.items():
            simulator.configure(connect_latency=connect_latency)
            results = {
                "password": measure(simulator, args.rounds, token=False),
                "API token": measure(simulator, args.rounds, token=True),
            }
            ratios.append(report(title, results))

    # The target is for latency per request, the model of the issue; with
    # set-up costs the login's own connection bounds the gain: 2 + 2 round
    # trips against 2 + 4, so 2/3 at best.
    ratio = round(ratios[0], 2)
    print(
        f"Password registration, parallel/sequential: {ratio:.2f} with latency per request "
        f"({'meets' if ratio <= TARGET_RATIO else 'misses'} the target <= {TARGET_RATIO:.2f}; "
        f"1/2 at best), {ratios[1]:.2f} with connection set-up too (2/3 at best)"
    )
    # Fail only when the reads clearly stopped overlapping (a ratio near
    # 1.0), not on the noise around the target.
    return 0 if ratio <= REGRESSION_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
