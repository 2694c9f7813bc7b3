"""``manage.py pve_simulator`` as a newcomer uses it (README, "A five-minute
tour"; docs/simulator.md): start it, copy what it prints, register it with the
service, switch its scenario while it runs, stop it with Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import urllib3

from pve_simulator.certificates import sha256_fingerprint
from tests.e2e.servers import PROJECT_DIR, PYTHON

pytestmark = pytest.mark.e2e

BANNER_END = "Ctrl-C stops it."


def command_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG")
    return {
        **{key: os.environ[key] for key in keep if key in os.environ},
        "PYTHONUNBUFFERED": "1",
    }


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PYTHON, "manage.py", "pve_simulator", "--port", "0", *args],
        cwd=PROJECT_DIR,
        env=command_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_banner(process: subprocess.Popen[str], timeout: float = 30) -> str:
    """The lines the command prints before it starts serving."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: list[str] = []
    done = threading.Event()

    def read() -> None:
        for line in stdout:
            lines.append(line)
            if line.startswith(BANNER_END):
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout) or not lines or not lines[-1].startswith(BANNER_END):
        process.kill()
        raise AssertionError("the simulator printed no banner:\n" + "".join(lines))
    return "".join(lines)


def field(banner: str, label: str) -> str:
    match = re.search(rf"^  {label} +(\S+)", banner, re.MULTILINE)
    assert match is not None, f"no {label} line in the banner"
    return match.group(1)


@pytest.fixture
def running() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = start("--auth-failure-delay", "0.2")
    try:
        yield process, read_banner(process)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


def test_prints_what_registering_it_takes_and_registers(registry, running, name):
    process, banner = running
    url = field(banner, "URL")
    fingerprint = field(banner, "Fingerprint")
    registry.secrets.add(field(banner, "Password"), field(banner, "Token secret"))

    # The fingerprint printed is the certificate served.
    host, port = re.fullmatch(r"https://([\d.]+):(\d+)", url).groups()  # type: ignore[union-attr]
    served = ssl.get_server_certificate((host, int(port)), timeout=5).encode()
    assert sha256_fingerprint(served) == fingerprint

    # The banner's own curl body registers it (with the suite's cluster name).
    curl_body = re.search(r"-d '(\{.*\})'$", banner, re.MULTILINE)
    assert curl_body is not None
    fields = {**json.loads(curl_body.group(1)), "name": name}
    response = registry.register(**fields)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["status"], body["api_endpoint"], body["fingerprint"]) == (
        "healthy",
        url,
        fingerprint,
    )

    # The runtime switch the banner shows.
    with requests.Session() as http:
        http.trust_env = False
        http.verify = False
        switch = re.search(r"curl -sk -X PUT (\S+) -d '(.*)'$", banner, re.MULTILINE)
        assert switch is not None
        with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
            answer = http.put(switch.group(1), data=switch.group(2), timeout=5)
    assert answer.json()["scenario"] == "degraded"
    assert registry.refresh(body["id"]).json()["status"] == "degraded"

    # Ctrl-C stops it cleanly; its request log holds no secret.
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    assert process.stderr is not None
    log = process.stderr.read()
    assert "POST /api2/json/access/ticket" not in log  # token login: no ticket call
    assert "GET /api2/json/version 200 auth=token" in log
    registry.secrets.assert_absent(log, "the simulator's log")


def test_ca_file_option_writes_a_ca_that_verifies_the_simulator(tmp_path):
    ca_file = tmp_path / "pve-ca.pem"
    process = start("--ca-file", str(ca_file), "--password", "chosen-pw", "--host", "127.0.0.1")
    try:
        banner = read_banner(process)
        assert field(banner, "CA file") == str(ca_file)
        assert field(banner, "Password") == "chosen-pw"
        with requests.Session() as http:
            http.trust_env = False
            login = http.post(
                f"{field(banner, 'URL')}/api2/json/access/ticket",
                data={"username": "root@pam", "password": "chosen-pw"},
                verify=str(ca_file),
                timeout=5,
            )
        assert login.status_code == 200
    finally:
        process.kill()
        process.wait(timeout=10)
    assert Path(ca_file).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--scenario", "on-fire"), "choose one of healthy, degraded"),
        (("--host", "0.0.0.0"), "loopback addresses only"),  # noqa: S104 - refused, as tested
    ],
)
def test_refuses_what_it_cannot_do(args, says):
    process = start(*args)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode != 0
    assert says in stderr


def run_banner(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = start("--auth-failure-delay", "0.2", *args)
    return process, read_banner(process)


def stop(process: subprocess.Popen[str]) -> str:
    """Ctrl-C; the log it wrote."""
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0
    assert process.stderr is not None
    return process.stderr.read()


def session() -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    http.verify = False
    return http


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_multi_node_mode_prints_every_node_and_plays_the_profile_and_role():
    process, banner = run_banner(
        "--nodes", "2", "--node-network", "127.0.41", "--profile", "pve9", "--role", "PVEAuditor"
    )
    try:
        nodes = re.findall(r"^  Node (\S+) +(https://\S+)  (\S+)$", banner, re.MULTILINE)
        assert [(name, url) for name, url, _ in nodes] == [
            ("pve1", nodes[0][1]),
            ("pve2", nodes[0][1].replace("127.0.41.1", "127.0.41.2")),
        ]
        for _name, url, fingerprint in nodes:
            host, port = re.fullmatch(r"https://([\d.]+):(\d+)", url).groups()  # type: ignore[union-attr]
            served = ssl.get_server_certificate((host, int(port)), timeout=5).encode()
            assert sha256_fingerprint(served) == fingerprint
        token = f"PVEAPIToken={field(banner, 'API token id')}={field(banner, 'Token secret')}"
        with session() as http:
            version = http.get(f"{nodes[1][1]}/api2/json/version", headers={"Authorization": token})
            assert version.json()["data"]["version"].startswith("9.")
            login = http.post(
                f"{nodes[0][1]}/api2/json/access/ticket",
                data={"username": "root@pam", "password": field(banner, "Password")},
            ).json()["data"]
            assert login["cap"]["nodes"] == {"Sys.Audit": 1}  # a PVEAuditor
            stop_node = re.search(
                r"curl -sk -X PUT (\S+) -d '(.*)'$", banner.split("Stop a node")[1], re.MULTILINE
            )
            assert stop_node is not None
            http.put(stop_node.group(1), data=stop_node.group(2), timeout=5)
            status = http.get(
                f"{nodes[0][1]}/api2/json/cluster/status", headers={"Authorization": token}
            )
            assert [e["online"] for e in status.json()["data"][1:]] == [1, 0]
    finally:
        log = stop(process)
    assert "node=pve2" in log


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_many_clusters_mode_prints_each_cluster_and_counts_its_checks():
    process, banner = run_banner("--clusters", "5", "--cluster-network", "127.5")
    try:
        rows = re.findall(r"^  (sim\d{4}) +(https://\S+) +(\S+)$", banner, re.MULTILINE)
        assert [name for name, _, _ in rows] == [f"sim000{i}" for i in range(1, 6)]
        password = field(banner, "Password")
        with session() as http:
            for _name, url, fingerprint in rows:
                host, port = re.fullmatch(r"https://([\d.]+):(\d+)", url).groups()  # type: ignore[union-attr]
                served = ssl.get_server_certificate((host, int(port)), timeout=5).encode()
                assert sha256_fingerprint(served) == fingerprint
                login = http.post(
                    f"{url}/api2/json/access/ticket",
                    data={"username": "root@pam", "password": password},
                )
                assert login.json()["data"]["clustername"] == _name
            counts_url = re.search(r"curl -sk (\S+/_simulator/counts)", banner)
            assert counts_url is not None
            counts = http.get(counts_url.group(1), timeout=5).json()
        assert {name: c["logins"] for name, c in counts.items()} == {name: 1 for name, _, _ in rows}
    finally:
        stop(process)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_proxy_mode_registers_through_the_proxy(registry, name):
    # Without a prefix: the registry takes only server roots as endpoints for now.
    process, banner = run_banner("--host", "127.0.0.1", "--proxy", "--proxy-standard-reasons")
    try:
        proxy_url = field(banner, "Proxy URL")
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", proxy_url)
        registry.secrets.add(field(banner, "Password"), field(banner, "Token secret"))
        curl_body = re.search(r"-d '(\{.*\})'$", banner, re.MULTILINE)
        assert curl_body is not None
        fields = {**json.loads(curl_body.group(1)), "name": name}
        assert fields["api_endpoint"] == proxy_url
        response = registry.register(**fields)
        assert response.status_code == 201, response.text
        assert response.json()["api_endpoint"] == proxy_url
    finally:
        log = stop(process)
    registry.secrets.assert_absent(log, "the simulator's log")
