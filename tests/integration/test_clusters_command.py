"""``manage.py clusters``: the registry from the command line."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from django.core.management import CommandError, call_command

from clusters.domain import Actor
from clusters.repositories.memory import InMemoryUnitOfWork
from tests.conftest import assert_secret_absent
from tests.fakes import FakeProxmox

SECRET = "Pa55-cli-secret-2a7c"


@pytest.fixture
def service(settings, compose):
    """A shared backend is required; the command gets services over an
    in-memory repository and a fake Proxmox for these tests."""
    settings.CLUSTER_REPOSITORY = "django"
    return compose(unit_of_work=InMemoryUnitOfWork.factory(), proxmox=FakeProxmox())


def run(*args):
    out = io.StringIO()
    call_command("clusters", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def stdin(monkeypatch):
    def feed(text):
        monkeypatch.setattr("sys.stdin", io.StringIO(text))

    return feed


def test_refuses_to_run_on_the_per_process_memory_backend(settings):
    settings.CLUSTER_REPOSITORY = "memory"
    with pytest.raises(CommandError, match="empty registry"):
        run("list")


def test_register_reads_the_secret_from_stdin_never_from_arguments(service, stdin):
    stdin(f"{SECRET}\n")
    output = run(
        "register", "--name", "prod", "--endpoint", "pve.example.com", "--username", "root@pam",
        "--secret-stdin",
    )  # fmt: skip
    assert output.startswith("Registered prod (")
    assert "healthy, PVE 8.2.4, 3 node(s)" in output
    assert_secret_absent(SECRET, output, "the command's output")
    cluster = service.clusters.get_cluster_by_name("prod", actor=Actor.command_line())
    assert cluster.credentials.password.reveal() == SECRET


def test_register_prompts_for_a_token_secret(service, monkeypatch):
    monkeypatch.setattr("getpass.getpass", lambda prompt: "tok-secret")
    run("register", "--name", "lab", "--endpoint", "10.0.0.5", "--token-id", "root@pam!cli")
    assert (
        service.clusters.get_cluster_by_name("lab", actor=Actor.command_line()).token_id
        == "root@pam!cli"
    )


def test_list_show_refresh_and_remove(service, stdin):
    stdin(f"{SECRET}\n")
    run("register", "--name", "prod", "--endpoint", "pve.example.com", "--username",
        "root@pam", "--secret-stdin")  # fmt: skip
    cluster = service.clusters.get_cluster_by_name("prod", actor=Actor.command_line())

    assert "prod" in run("list") and "1 cluster(s)" in run("list")
    shown = json.loads(run("show", "PROD"))
    assert shown["id"] == str(cluster.id) and "password" not in shown
    assert json.loads(run("show", str(cluster.id)))["name"] == "prod"
    assert run("refresh", "prod") == "prod: healthy\n"
    assert run("refresh", "--all").startswith("Checked 1 of 1 cluster(s) in ")
    assert run("remove", "prod") == f"Removed prod ({cluster.id})\n"
    assert run("list") == "0 cluster(s)\n"


def test_unknown_clusters_and_invalid_input_are_command_errors(service, stdin):
    with pytest.raises(CommandError, match="is not registered"):
        run("show", "nothing-here")
    with pytest.raises(CommandError, match="is not registered"):
        run("remove", str(uuid.uuid4()))
    stdin("pw\n")
    with pytest.raises(CommandError, match="realm"):
        run("register", "--name", "x", "--endpoint", "pve.example.com", "--username", "root",
            "--secret-stdin")  # fmt: skip
