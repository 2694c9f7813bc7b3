"""Start the real service as a separate process on a loopback port.

Used by the end-to-end tests: the service runs exactly as an operator runs
it (``manage.py runserver`` or gunicorn, settings from the environment) and
the tests talk to it over a real socket.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import requests

PROJECT_DIR = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
STARTUP_TIMEOUT = 30.0
E2E_CREDENTIALS_KEY = "kVfH0rXq8m1cX5qB2f8dYHZz3o7xw6n9gQeT4sLrJpU="


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def service_environment(database_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a production-like service process on loopback.

    Inherits nothing that could change its behaviour by accident (no
    DJANGO_SETTINGS_MODULE of the test run); keeps PATH and the CA variables
    the tests want to prove harmless.
    """
    keep = ("PATH", "HOME", "LANG", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env.update(
        DJANGO_SETTINGS_MODULE="proxmoxer_site.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="e2e-only-secret-key-9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1,[::1]",
        DATABASE_URL=database_url,
        PROXMOXER_CREDENTIALS_KEYS=E2E_CREDENTIALS_KEY,
        PYTHONUNBUFFERED="1",
        # No background checks unless a test asks for them: they would add
        # requests to the simulators that other tests count.
        PROXMOXER_MONITOR="off",
    )
    env.update(overrides)
    return env


def manage(env: Mapping[str, str], *args: str) -> str:
    result = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def prepare_database(env: Mapping[str, str], username: str = "operator") -> str:
    """Migrate and create a user; return that user's API token."""
    manage(env, "migrate", "--noinput", "--verbosity", "0")
    manage(
        {**env, "DJANGO_SUPERUSER_PASSWORD": "e2e-operator-password"},
        "createsuperuser",
        "--noinput",
        "--username",
        username,
        "--email",
        f"{username}@example.invalid",
    )
    # `api_token create` prints the new token alone on its last line.
    token = manage(env, "api_token", "create", username).rstrip("\n").splitlines()[-1]
    if not re.fullmatch(r"[0-9a-f]{64}", token):
        raise RuntimeError("api_token create did not end with a token")
    return token


@dataclass
class ServerProcess:
    """One running service process and how to reach it."""

    command: Sequence[str]
    env: Mapping[str, str]
    base_url: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ServerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            list(self.command),
            cwd=PROJECT_DIR,
            env=dict(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if requests.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def runserver(env: Mapping[str, str], log_path: Path, host: str = "127.0.0.1") -> ServerProcess:
    port = free_port(host)
    address = f"[{host}]" if ":" in host else host
    command = [PYTHON, "manage.py", "runserver", f"{address}:{port}", "--noreload"]
    if ":" in host:
        command.insert(3, "--ipv6")
    return ServerProcess(command, env, f"http://{address}:{port}", log_path).start()


def gunicorn(env: Mapping[str, str], log_path: Path, workers: int = 2) -> ServerProcess:
    port = free_port()
    command = [
        PYTHON,
        "-m",
        "gunicorn",
        "proxmoxer_site.wsgi",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        "-",
    ]
    return ServerProcess(command, env, f"http://127.0.0.1:{port}", log_path).start()


@dataclass
class CeleryWorker:
    """A Celery worker with its own beat, as ``make worker`` runs it, in a
    session of its own so that it can be killed whole (``kill -9`` of its
    process group: the worker and its beat)."""

    env: Mapping[str, str]
    log_path: Path
    name: str
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> CeleryWorker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                PYTHON, "-m", "celery", "-A", "proxmoxer_site", "worker", "--beat",
                "--pool", "solo", "--without-gossip", "--without-mingle",
                "--loglevel", "WARNING", "--hostname", f"{self.name}@%h",
            ],
            cwd=PROJECT_DIR,
            env=dict(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the worker's whole process group (worker and beat)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            with contextlib.suppress(ProcessLookupError):  # its beat may outlive it
                if self.process is not None:
                    os.killpg(self.process.pid, signal.SIGKILL)
            return
        try:
            self.kill(signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
