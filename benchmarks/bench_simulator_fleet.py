"""Many simulated clusters: what a fleet costs the machine.

Starts ``--clusters`` simulated clusters (default 1,000) in a process of
their own, each on its own loopback address (127.1.x.y) and one port, with
``--latency`` (default 100 ms) added to every API request; then checks each
cluster once from this process as a registry would (log in, read /version
and /cluster/status) with ``--workers`` threads, and reports the fleet's
start time, memory, CPU per pass, and CPU while idle, read from /proc. The
counts of ``/_simulator/counts`` must show every cluster checked exactly
once. Traffic goes only to 127.1.0.0/16.

    .venv/bin/python benchmarks/bench_simulator_fleet.py [--clusters 1000] [--workers 100]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pve_simulator.fleet import VirtualClusters

PASSWORD = "bench-fleet-password"  # the simulator's own, made up here


def _serve(pipe: Connection, count: int, latency: float) -> None:
    started = time.perf_counter()
    fleet = VirtualClusters(count, latency=latency, password=PASSWORD).start()
    pipe.send(
        {
            "start_seconds": time.perf_counter() - started,
            "urls": [cluster.url for cluster in fleet.clusters],
            "pid": os.getpid(),
        }
    )
    pipe.recv()  # until told to stop
    fleet.stop()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.1)
    options = parser.parse_args()
    warnings.simplefilter("ignore")  # the fleet's certificates are self-signed

    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(child, options.clusters, options.latency), daemon=True
    )
    server.start()
    fleet = parent.recv()
    pid, urls = fleet["pid"], fleet["urls"]
    local = threading.local()

    def check(url: str) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
            session.verify = False
        api = f"{url}/api2/json"
        login = session.post(
            f"{api}/access/ticket", data={"username": "root@pam", "password": PASSWORD}, timeout=30
        ).json()["data"]
        cookie = {"Cookie": f"PVEAuthCookie={login['ticket']}"}
        session.get(f"{api}/version", headers=cookie, timeout=30).raise_for_status()
        session.get(f"{api}/cluster/status", headers=cookie, timeout=30).raise_for_status()

    try:
        rss = _rss_mib(pid)
        cpu = _cpu_seconds(pid)
        started = time.perf_counter()
        with ThreadPoolExecutor(options.workers) as pool:
            list(pool.map(check, urls))
        wall = time.perf_counter() - started
        pass_cpu = _cpu_seconds(pid) - cpu
        with requests.Session() as session:
            session.trust_env = False
            session.verify = False
            counts = session.get(f"{urls[0]}/_simulator/counts", timeout=30).json()
        once = all(c["logins"] == 1 and c["reads"] == 2 for c in counts.values())
        time.sleep(6)  # past the 5 s keep-alive: every connection closed
        cpu = _cpu_seconds(pid)
        time.sleep(10)
        idle_cpu = _cpu_seconds(pid) - cpu
    finally:
        parent.send("stop")
        server.join(timeout=30)

    print(f"{options.clusters} clusters, {options.latency * 1000:.0f} ms per request")
    print(f"  start:                        {fleet['start_seconds']:.1f} s, {rss:.0f} MiB")
    print(f"  one check of each cluster:    {wall:.1f} s wall ({options.workers} client threads)")
    print(f"  simulator CPU for that pass:  {pass_cpu:.1f} s ({len(counts) * 3} requests)")
    print(f"  every cluster checked once:   {'yes' if once and len(counts) == len(urls) else 'NO'}")
    print(f"  simulator CPU, 10 s idle:     {idle_cpu:.2f} s")
    if not once:
        sys.exit(1)


if __name__ == "__main__":
    main()
