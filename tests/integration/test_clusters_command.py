"""``manage.py clusters``: the registry from the command line."""

from __future__ import annotations

import io
import json
import re
import uuid

import pytest
from django.core.management import CommandError, call_command

from clusters.domain import (
    OPERATORS,
    VIEWERS,
    Actor,
    AuditAction,
    AuditQuery,
    ProxmoxUnreachable,
    RegistrationRequest,
)
from clusters.repositories.memory import InMemoryUnitOfWork
from tests.conftest import assert_secret_absent, with_role
from tests.fakes import DEGRADED_REPORT, FakeProxmox

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


@pytest.mark.django_db
def test_as_a_named_account_the_command_obeys_its_role_and_is_recorded_under_it(
    service, stdin, django_user_model
):
    with_role(django_user_model.objects.create_user("vera"), VIEWERS)
    with_role(django_user_model.objects.create_user("otto"), OPERATORS)
    django_user_model.objects.create_user("nora")
    stdin(f"{SECRET}\n")
    run("--as", "otto", "register", "--name", "prod", "--endpoint", "pve.example.com",
        "--username", "root@pam", "--secret-stdin")  # fmt: skip

    assert "1 cluster(s)" in run("--as", "vera", "list")
    with pytest.raises(CommandError, match="vera may not deregister clusters"):
        run("--as", "vera", "remove", "prod")
    with pytest.raises(CommandError, match="nora may not list clusters"):
        run("--as", "nora", "list")
    assert "1 cluster(s)" in run("list"), "nothing was removed"

    registered = service.audit.events(AuditQuery(), actor=Actor.command_line()).events[-1]
    assert (registered.action, registered.actor) == (AuditAction.CLUSTER_REGISTER, "otto")
    assert run("--as", "otto", "remove", "prod").startswith("Removed prod")


@pytest.mark.django_db
def test_as_an_unknown_or_inactive_account_the_command_refuses(service, django_user_model):
    django_user_model.objects.create_user("gone", is_active=False)
    for username in ("nobody", "gone"):
        with pytest.raises(CommandError, match=f"No active account named '{username}'"):
            run("--as", username, "list")


def test_register_can_hand_off_to_a_token_and_remove_delete_it_with_the_owners_password(
    settings, compose, stdin
):
    settings.CLUSTER_REPOSITORY = "django"
    proxmox = FakeProxmox()
    service = compose(unit_of_work=InMemoryUnitOfWork.factory(), proxmox=proxmox)
    stdin(f"{SECRET}\n")
    run("register", "--name", "prod", "--endpoint", "pve.example.com", "--username",
        "root@pam", "--secret-stdin", "--create-token")  # fmt: skip
    cluster = service.clusters.get_cluster_by_name("prod", actor=Actor.command_line())
    assert cluster.token_id in proxmox.tokens and cluster.credentials.created_by_registry

    stdin(f"{SECRET}\n")
    output = run("remove", "prod", "--token-owner", "root@pam", "--secret-stdin")

    assert output == f"Removed prod ({cluster.id})\n"
    assert proxmox.tokens == {}
    assert proxmox.token_calls[-1] == ("delete", "root@pam", cluster.token_id)
    assert_secret_absent(SECRET, output, "the command's output")


# -- refresh --all: the background checks' engine at a terminal --------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def register_three(service) -> None:
    for name in ("alpha", "beta", "gamma"):
        service.clusters.register(
            RegistrationRequest(
                name=name, api_endpoint=f"{name}.example.com", username="root@pam", password=SECRET
            ),
            actor=Actor.command_line(),
        )


def test_refresh_all_checks_every_cluster_and_summarises_by_status(
    settings, compose, capsys, monkeypatch
):
    settings.CLUSTER_REPOSITORY = "django"
    proxmox = FakeProxmox()
    service = compose(unit_of_work=InMemoryUnitOfWork.factory(), proxmox=proxmox)
    register_three(service)
    proxmox.report = DEGRADED_REPORT

    output = run("refresh", "--all", "--concurrency", "2")

    assert re.fullmatch(r"Checked 3 of 3 cluster\(s\) in \d+\.\d s: 3 degraded\n", output)
    assert len(proxmox.checks) == 3
    assert capsys.readouterr().err == ""  # no progress bar where stderr is no terminal


def test_refresh_all_lists_the_failures_and_exits_with_an_error(settings, compose):
    settings.CLUSTER_REPOSITORY = "django"
    proxmox = FakeProxmox()
    service = compose(unit_of_work=InMemoryUnitOfWork.factory(), proxmox=proxmox)
    register_three(service)
    proxmox.error = ProxmoxUnreachable("Could not connect to beta.example.com: connection refused")
    out = io.StringIO()

    with pytest.raises(CommandError, match=r"^3 of 3 check\(s\) failed$"):
        call_command("clusters", "refresh", "--all", stdout=out)

    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"Checked 3 of 3 cluster\(s\) in \d+\.\d s: 3 unhealthy", lines[0])
    assert lines[1:] == ["Failures (3):"] + [
        f"  {name}: Could not connect to beta.example.com: connection refused"
        for name in ("alpha", "beta", "gamma")
    ]


def test_refresh_all_shows_its_progress_on_a_terminal(service, monkeypatch):
    register_three(service)
    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)

    run("refresh", "--all")

    assert "3/3" in terminal.getvalue() and "cluster" in terminal.getvalue()


def test_refresh_all_refuses_a_concurrency_below_one(service):
    with pytest.raises(CommandError, match="--concurrency must be at least 1"):
        run("refresh", "--all", "--concurrency", "0")
