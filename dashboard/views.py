"""The dashboard's pages. Each view turns a request into a call of a use case
with the acting user's ``Actor`` (as the REST API does), and the answer, or
the domain error, into a page; what is shown and how lives in the
templates and in dashboard/presenters.py.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import LoginView, LogoutView, redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from clusters.access import actor_for
from clusters.api_errors import status_for
from clusters.domain import (
    Actor,
    AuditAction,
    Cluster,
    ClusterError,
    ClusterNotFound,
    EditRequest,
    FieldInvalid,
    Forbidden,
    InvalidClusterId,
    Permission,
    PreconditionFailed,
    StaleCluster,
    authorize,
    may,
    normalise_name,
    parse_cluster_id,
)
from clusters.services import utc_now
from clusters.wiring import services
from dashboard import pending
from dashboard.fleet import FleetFilters, read_fleet
from dashboard.forms import (
    ClusterFields,
    EditForm,
    RegisterForm,
    TrustOffer,
    edit_request,
    registration_request,
    untrusted_fingerprint,
)
from dashboard.presenters import (
    HistoryLine,
    NodeLine,
    endpoints_of,
    observed_fingerprint,
    section,
    status_badge,
)
from dashboard.security import dashboard_page

logger = logging.getLogger("clusters")

# The status changes a cluster's page shows (the REST API pages through all).
HISTORY_SHOWN = 20
SECRET_FIELDS = ("password", "token_secret")


@method_decorator(dashboard_page, name="dispatch")
@method_decorator(sensitive_post_parameters("password"), name="dispatch")
class DashboardLoginView(LoginView):
    """Django's login (its form authenticates through the configured
    backends, so login throttling applies here as everywhere)."""

    template_name = "dashboard/login.html"
    redirect_authenticated_user = True
    next_page = "dashboard:index"


@method_decorator(dashboard_page, name="dispatch")
class DashboardLogoutView(LogoutView):
    next_page = "dashboard:index"


def record_failure(
    action: AuditAction,
    actor: Actor,
    error: ClusterError,
    *,
    cluster_id: str | uuid.UUID | None = None,
    cluster_name: str | None = None,
) -> None:
    """Record in the audit log what the dashboard was refused, or what failed,
    with the status the REST API would have answered, as the API records its
    own (docs/product-contract.md §13). Best effort: the page shown does not
    depend on the record."""
    try:
        parsed = parse_cluster_id(cluster_id) if cluster_id is not None else None
    except InvalidClusterId:
        parsed = None
    try:
        services().audit.record_failure(
            action,
            actor=actor,
            status_code=status_for(error),
            cluster_id=parsed,
            cluster_name=cluster_name,
        )
    except Exception:  # the record must not change the page
        logger.exception("Could not record an audit event, action=%s", action)


def signed_in_page(
    view: Callable[..., HttpResponse] | None = None, *, audited: AuditAction | None = None
) -> Any:
    """A page for signed-in users: anonymous visitors go to the login page;
    the use cases' own refusals become pages (403 for a role that does not
    allow it, 404 for a cluster that is not registered) and, like a POST of
    an ``audited`` action that found no cluster, records in the audit log."""
    if view is None:
        return functools.partial(signed_in_page, audited=audited)

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("dashboard:login"))
        actor = actor_for(request)
        cluster_id = kwargs.get("cluster_id")
        try:
            return view(request, actor, *args, **kwargs)
        except Forbidden as error:
            record_failure(AuditAction.AUTH_FORBIDDEN, actor, error, cluster_id=cluster_id)
            return render(
                request, "dashboard/forbidden.html", {"reason": error.message}, status=403
            )
        except (ClusterNotFound, InvalidClusterId) as error:
            if audited is not None and request.method == "POST":
                record_failure(audited, actor, error, cluster_id=cluster_id)
            return render(
                request, "dashboard/not_found.html", {"reason": error.message}, status=404
            )

    return dashboard_page(wrapped)


@require_http_methods(["GET", "HEAD", "POST"])
def index(request: HttpRequest) -> HttpResponse:
    """The clusters table; for anonymous visitors, the login page."""
    if not request.user.is_authenticated:
        return DashboardLoginView.as_view()(request)
    return _fleet(request, template="dashboard/index.html")


@require_safe
@dashboard_page
def fleet_rows(request: HttpRequest) -> HttpResponse:
    """The table's contents alone, for the page to refresh itself. 401 (not
    a redirect to the login page) once the session has ended, so the page
    can say so."""
    if not request.user.is_authenticated:
        return HttpResponse("Signed out", status=401, content_type="text/plain")
    return _fleet(request, template="dashboard/_fleet.html")


def poll_seconds() -> int:
    """How often the clusters table asks for fresh rows while it is shown:
    every 15 s, and never less often than the background checks run, so
    each check shows."""
    return max(1, min(15, int(settings.PROXMOXER_CHECK_INTERVAL)))


@signed_in_page
def _fleet(request: HttpRequest, actor: Actor, *, template: str) -> HttpResponse:
    filters = FleetFilters(request.GET)
    context = {
        "filters": filters,
        "fleet": read_fleet(actor, filters),
        "may_operate": may(actor, Permission.OPERATE),
        "poll_seconds": poll_seconds(),
    }
    return render(request, template, context)


@require_safe
@signed_in_page
def cluster_page(request: HttpRequest, actor: Actor, cluster_id: str) -> HttpResponse:
    cluster = services().clusters.get_cluster(cluster_id, actor=actor)
    checks = services().checks
    nodes = checks.nodes(cluster.id, actor=actor)
    history = checks.history(cluster.id, actor=actor, limit=HISTORY_SHOWN)
    context = {
        "cluster": cluster,
        "status": status_badge(cluster.status),
        "endpoints": endpoints_of(cluster),
        # Not yet known until a check has read them.
        "nodes": section(nodes.nodes if nodes.checked_at else None, NodeLine, nodes.checked_at),
        "history": section(history.events, HistoryLine),
        "history_total": history.total,
        "observed_fingerprint": observed_fingerprint(cluster),
        "may_operate": may(actor, Permission.OPERATE),
    }
    return render(request, "dashboard/cluster.html", context)


REGISTRATION = "register"
WAITED_TOO_LONG = (
    "That waited too long to be kept: check the form and send it again, typing the secret "
    "again if it was part of the change."
)


@require_http_methods(["GET", "HEAD", "POST"])
@sensitive_post_parameters(*SECRET_FIELDS)
@signed_in_page
def register(request: HttpRequest, actor: Actor) -> HttpResponse:
    if request.method != "POST":
        # Refused here, not only on submit: a viewer gets no form to fill in.
        authorize(actor, Permission.OPERATE, "register clusters")
        return _register_page(request, RegisterForm())
    form = RegisterForm(request.POST)
    if not form.is_valid():
        return _register_page(request, form)
    return _register(request, actor, form, form.typed(), form.secret_typed())


@require_POST
@sensitive_post_parameters(*SECRET_FIELDS)
@signed_in_page
def trust_and_register(request: HttpRequest, actor: Actor) -> HttpResponse:
    """The one button after an untrusted certificate: register again with
    that certificate pinned and the secret the operator typed before."""
    waiting = pending.take(
        request.session, request.POST.get("handle", ""), purpose=REGISTRATION, now=utc_now()
    )
    if waiting is None:
        messages.warning(request, "That registration is no longer waiting; fill in the form again.")
        return redirect("dashboard:register")
    typed = {**waiting.typed, "fingerprint": waiting.fingerprint}
    form = RegisterForm.showing(typed)
    if waiting.expired or waiting.secret is None:
        form.add_error(form.secret_field, WAITED_TOO_LONG)
        return _register_page(request, form)
    return _register(request, actor, form, typed, waiting.secret)


def _register(
    request: HttpRequest, actor: Actor, form: ClusterFields, typed: dict[str, Any], secret: str
) -> HttpResponse:
    try:
        cluster = services().clusters.register(registration_request(typed, secret), actor=actor)
    except Forbidden:
        raise
    except ClusterError as error:
        record_failure(
            AuditAction.CLUSTER_REGISTER, actor, error, cluster_name=_name_or_none(typed["name"])
        )
        offer = _offer_trust(
            request,
            error,
            typed,
            secret,
            purpose=REGISTRATION,
            action=reverse("dashboard:trust"),
            button="Trust this certificate and register",
        )
        if offer is None:
            form.show(error)
        return _register_page(request, form, offer)
    messages.success(request, f"Registered {cluster.name}: {status_badge(cluster.status).label}.")
    return redirect("dashboard:cluster", cluster_id=cluster.id)


def _name_or_none(typed: str) -> str | None:
    """The name a failed registration asked for, for its audit event, if it
    is one a name could be."""
    try:
        return normalise_name(typed)
    except FieldInvalid:
        return None


def _register_page(
    request: HttpRequest, form: ClusterFields, offer: TrustOffer | None = None
) -> HttpResponse:
    return render(request, "dashboard/register.html", {"form": form, "offer": offer})


def _offer_trust(
    request: HttpRequest,
    error: ClusterError,
    typed: dict[str, Any],
    secret: str | None,
    *,
    purpose: str,
    action: str,
    button: str,
) -> TrustOffer | None:
    """After an untrusted certificate, keep the change waiting (pending.py)
    and offer the button that sends it again with that certificate pinned;
    None for any other error."""
    fingerprint = untrusted_fingerprint(error)
    if fingerprint is None:
        return None
    handle = pending.keep(
        request.session,
        purpose=purpose,
        typed=typed,
        secret=secret,
        fingerprint=fingerprint,
        now=utc_now(),
    )
    return TrustOffer(typed["api_endpoint"], fingerprint, handle, action, button)


def _editing(cluster_id: str | uuid.UUID) -> str:
    return f"edit:{cluster_id}"


@require_http_methods(["GET", "HEAD", "POST"])
@sensitive_post_parameters(*SECRET_FIELDS)
@signed_in_page(audited=AuditAction.CLUSTER_EDIT)
def edit(request: HttpRequest, actor: Actor, cluster_id: str) -> HttpResponse:
    cluster = services().clusters.get_cluster(cluster_id, actor=actor)
    if request.method != "POST":
        authorize(actor, Permission.OPERATE, "edit clusters")
        return _edit_page(request, cluster, EditForm.of(cluster))
    form = EditForm(request.POST)
    if not form.is_valid():
        return _edit_page(request, cluster, form)
    return _edit(request, actor, cluster, form, form.typed(), form.secret_typed() or None)


@require_POST
@sensitive_post_parameters(*SECRET_FIELDS)
@signed_in_page(audited=AuditAction.CLUSTER_EDIT)
def trust_and_edit(request: HttpRequest, actor: Actor, cluster_id: str) -> HttpResponse:
    """The one button after an edit met an untrusted certificate."""
    cluster = services().clusters.get_cluster(cluster_id, actor=actor)
    waiting = pending.take(
        request.session,
        request.POST.get("handle", ""),
        purpose=_editing(cluster.id),
        now=utc_now(),
    )
    if waiting is None:
        messages.warning(request, "That change is no longer waiting; make it again.")
        return redirect("dashboard:edit", cluster_id=cluster.id)
    typed = {**waiting.typed, "fingerprint": waiting.fingerprint}
    form = EditForm.showing(typed)
    if waiting.expired:
        form.add_error(
            form.secret_field if waiting.typed.get("has_secret") else None, WAITED_TOO_LONG
        )
        return _edit_page(request, cluster, form)
    return _edit(request, actor, cluster, form, typed, waiting.secret)


def _edit(
    request: HttpRequest,
    actor: Actor,
    cluster: Cluster,
    form: ClusterFields,
    typed: dict[str, Any],
    secret: str | None,
) -> HttpResponse:
    try:
        edited = services().clusters.edit(
            cluster.id,
            edit_request(typed, secret),
            actor=actor,
            expected_version=typed["version"],
        )
    except Forbidden:
        raise
    except PreconditionFailed as error:
        record_failure(AuditAction.CLUSTER_EDIT, actor, error, cluster_id=cluster.id)
        # Shown with what was typed, now based on the stored version: sending
        # it again, after a look at the cluster's page, applies it.
        form = EditForm.showing({**typed, "version": error.current_version})
        form.add_error(
            None,
            "Someone changed this cluster since this form was opened. Compare with its "
            "page, then save again to apply these values.",
        )
        return _edit_page(request, cluster, form)
    except ClusterError as error:
        record_failure(AuditAction.CLUSTER_EDIT, actor, error, cluster_id=cluster.id)
        offer = _offer_trust(
            request,
            error,
            {**typed, "has_secret": bool(secret)},
            secret,
            purpose=_editing(cluster.id),
            action=reverse("dashboard:edit-trust", args=[cluster.id]),
            button="Trust this certificate and save",
        )
        if offer is None:
            form.show(error)
        return _edit_page(request, cluster, form, offer)
    if edited.version == typed["version"]:
        messages.info(request, "Nothing to change.")
    else:
        messages.success(request, f"Saved {edited.name}.")
    return redirect("dashboard:cluster", cluster_id=cluster.id)


def _edit_page(
    request: HttpRequest, cluster: Cluster, form: ClusterFields, offer: TrustOffer | None = None
) -> HttpResponse:
    context = {"cluster": cluster, "form": form, "offer": offer}
    return render(request, "dashboard/edit.html", context)


@require_POST
@signed_in_page(audited=AuditAction.CLUSTER_EDIT)
def renew_trust(request: HttpRequest, actor: Actor, cluster_id: str) -> HttpResponse:
    """Pin the certificate a check found in place of the trusted one (the
    fingerprint the cluster's page showed, as stored, never a posted one)."""
    cluster = services().clusters.get_cluster(cluster_id, actor=actor)
    observed = observed_fingerprint(cluster)
    if observed is None or request.POST.get("fingerprint") != observed:
        messages.warning(
            request, "The certificate to trust has changed since the page was shown; look again."
        )
        return redirect("dashboard:cluster", cluster_id=cluster.id)
    try:
        edited = services().clusters.edit(
            cluster.id,
            EditRequest(fingerprint=observed),
            actor=actor,
            expected_version=cluster.version,
        )
    except Forbidden:
        raise
    except ClusterError as error:
        record_failure(AuditAction.CLUSTER_EDIT, actor, error, cluster_id=cluster.id)
        messages.error(request, f"The certificate was not trusted: {error.message}")
    else:
        badge = status_badge(edited.status)
        messages.success(request, f"Trusted the new certificate of {edited.name}: {badge.label}.")
    return redirect("dashboard:cluster", cluster_id=cluster.id)


@require_POST
@signed_in_page(audited=AuditAction.CLUSTER_REFRESH)
def refresh(request: HttpRequest, actor: Actor, cluster_id: str) -> HttpResponse:
    try:
        cluster = services().checks.refresh(cluster_id, actor=actor)
    except StaleCluster as error:
        record_failure(AuditAction.CLUSTER_REFRESH, actor, error, cluster_id=cluster_id)
        messages.warning(
            request,
            "The cluster's configuration was changed while it was being checked; "
            "its findings were dropped. Check it again.",
        )
    else:
        badge = status_badge(cluster.status)
        messages.success(request, f"Checked {cluster.name}: {badge.label}.")
    return redirect("dashboard:cluster", cluster_id=cluster_id)


@require_http_methods(["GET", "HEAD", "POST"])
@signed_in_page(audited=AuditAction.CLUSTER_DEREGISTER)
def deregister(request: HttpRequest, actor: Actor, cluster_id: str) -> HttpResponse:
    """GET asks for confirmation; POST deregisters."""
    cluster = services().clusters.get_cluster(cluster_id, actor=actor)
    if request.method != "POST":
        if not may(actor, Permission.OPERATE):
            authorize(actor, Permission.OPERATE, "deregister clusters")
        return render(request, "dashboard/deregister.html", {"cluster": cluster})
    services().clusters.deregister(cluster.id, actor=actor)
    messages.success(request, f"Deregistered {cluster.name}.")
    return redirect("dashboard:index")
