"""The dashboard's pages. Each view turns a request into a call of a use case
with the acting user's ``Actor`` (as the REST API does), and the answer, or
the domain error, into a page; what is shown and how lives in the
templates and in dashboard/presenters.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.views import LoginView, LogoutView, redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from clusters.domain import (
    Actor,
    ClusterError,
    ClusterNotFound,
    Forbidden,
    InvalidClusterId,
    Permission,
    StaleCluster,
    authorize,
    may,
)
from clusters.services import utc_now
from clusters.views import actor_for
from clusters.wiring import services
from dashboard import pending
from dashboard.fleet import FleetFilters, read_fleet
from dashboard.forms import (
    RegisterForm,
    TrustOffer,
    registration_request,
    untrusted_fingerprint,
)
from dashboard.presenters import (
    HistoryLine,
    NodeLine,
    endpoints_of,
    section,
    status_badge,
)
from dashboard.security import dashboard_page

# How often the clusters table asks for fresh rows while it is visible: no
# longer than the background checks' interval, so each check shows.
POLL_SECONDS = 15
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


Page = Callable[..., HttpResponse]


def signed_in_page(view: Callable[..., HttpResponse]) -> Page:
    """A page for signed-in users: anonymous visitors go to the login page;
    the use cases' own refusals become pages (403 for a role that does not
    allow it, 404 for a cluster that is not registered)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("dashboard:login"))
        actor = actor_for(request)  # a Django request serves as well as DRF's
        try:
            return view(request, actor, *args, **kwargs)
        except Forbidden as error:
            return render(
                request, "dashboard/forbidden.html", {"reason": error.message}, status=403
            )
        except (ClusterNotFound, InvalidClusterId) as error:
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


@signed_in_page
def _fleet(request: HttpRequest, actor: Actor, *, template: str) -> HttpResponse:
    filters = FleetFilters(request.GET)
    context = {
        "filters": filters,
        "fleet": read_fleet(actor, filters),
        "may_operate": may(actor, Permission.OPERATE),
        "poll_seconds": POLL_SECONDS,
    }
    return render(request, template, context)


@require_safe
@signed_in_page
def cluster_page(request: HttpRequest, actor: Actor, cluster_id: str) -> HttpResponse:
    cluster = services().clusters.get_cluster(cluster_id, actor=actor)
    context = {
        "cluster": cluster,
        "status": status_badge(cluster.status),
        "endpoints": endpoints_of(cluster),
        # Recorded by the background checks once they run; until then the
        # page says these are not yet known.
        "nodes": section(None, NodeLine),
        "history": section(None, HistoryLine),
        "may_operate": may(actor, Permission.OPERATE),
    }
    return render(request, "dashboard/cluster.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@sensitive_post_parameters(*SECRET_FIELDS)
@signed_in_page
def register(request: HttpRequest, actor: Actor) -> HttpResponse:
    if request.method != "POST":
        # Refused here, not only on submit: a viewer gets no form to fill in.
        if not may(actor, Permission.OPERATE):
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
    waiting = pending.take(request.session, request.POST.get("handle", ""), now=utc_now())
    if waiting is None:
        messages.warning(
            request, "That registration is no longer waiting; please fill in the form again."
        )
        return redirect("dashboard:register")
    typed = {**waiting.typed, "fingerprint": waiting.fingerprint}
    form = _form_showing(typed)
    if waiting.secret is None:
        form.add_error(
            form.secret_field,
            "Type the secret again: the registration waited too long to keep it.",
        )
        return _register_page(request, form)
    return _register(request, actor, form, typed, waiting.secret)


def _register(
    request: HttpRequest, actor: Actor, form: RegisterForm, typed: dict[str, Any], secret: str
) -> HttpResponse:
    try:
        cluster = services().clusters.register(registration_request(typed, secret), actor=actor)
    except Forbidden:
        raise
    except ClusterError as error:
        fingerprint = untrusted_fingerprint(error)
        if fingerprint is None:
            form.show(error)
            return _register_page(request, form)
        handle = pending.keep(
            request.session, typed=typed, secret=secret, fingerprint=fingerprint, now=utc_now()
        )
        offer = TrustOffer(endpoint=typed["api_endpoint"], fingerprint=fingerprint, handle=handle)
        return _register_page(request, form, offer)
    messages.success(request, f"Registered {cluster.name}: {status_badge(cluster.status).label}.")
    return redirect("dashboard:cluster", cluster_id=cluster.id)


def _form_showing(typed: dict[str, Any]) -> RegisterForm:
    """A bound form holding ``typed`` (so field errors can be added to it)."""
    data = {key: value for key, value in typed.items() if key != "verify_tls"}
    if typed.get("verify_tls"):
        data["verify_tls"] = "on"
    form = RegisterForm(data)
    form.is_valid()
    return form


def _register_page(
    request: HttpRequest, form: RegisterForm, offer: TrustOffer | None = None
) -> HttpResponse:
    return render(request, "dashboard/register.html", {"form": form, "offer": offer})


@require_POST
@signed_in_page
def refresh(request: HttpRequest, actor: Actor, cluster_id: str) -> HttpResponse:
    try:
        cluster = services().checks.refresh(cluster_id, actor=actor)
    except StaleCluster:
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
@signed_in_page
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
