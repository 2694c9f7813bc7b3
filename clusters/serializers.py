"""Input and output shapes of the cluster API.

The input serializer checks types and bounds sizes; the field rules
themselves (endpoint normalisation, realms, fingerprints, which credentials)
live in the domain, so the API, management commands and tests share them.
Secrets are write-only: no output serializer has a field for them.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.http import QueryDict
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers
from rest_framework.fields import empty
from rest_framework.request import Request

from clusters import domain
from clusters.api_errors import InvalidInput

_EMPTY_CODES = {"required", "blank", "null"}
# What a browser's form adds beside the fields (Django's CSRF token).
_FORM_EXTRAS = frozenset({"csrfmiddlewaretoken"})


class InputSerializer(serializers.Serializer):
    def validated_or_raise(self) -> dict[str, Any]:
        """Validated data, or InvalidInput with a one-line summary."""
        if self.is_valid():
            return self.validated_data
        field_name, messages = next(iter(self.errors.items()))
        field = self.fields.get(field_name)
        label = field.label if field is not None and field.label else field_name
        first = messages[0] if isinstance(messages, list) and messages else messages
        if getattr(first, "code", None) in _EMPTY_CODES:
            message = f"{label} is required"
        elif field is None:
            message = str(first)
        else:
            message = f"{label}: {first}"
        raise InvalidInput(message, self.errors)


_ENDPOINT_HELP = (
    "https://host[:port][/prefix]; a bare host gets https:// and port 8006, "
    "https:// without a port means 443"
)
_CREATE_TOKEN_HELP = (
    "With username and password: create a read-only (PVEAuditor) API token on the cluster "
    "and keep only the token, never the password"
)
_DISCOVER_HELP = (
    "Learn every other node's address and certificate from the cluster, so that a check "
    "still answers when the registered node is down; learned again whenever the connection "
    "changes"
)


def _secret_field(label: str, help_text: str) -> serializers.CharField:
    return serializers.CharField(
        label=label,
        help_text=help_text,
        required=False,
        allow_blank=True,
        allow_null=True,
        write_only=True,
        trim_whitespace=False,
        max_length=domain.SECRET_MAX_LENGTH,
        style={"input_type": "password"},
    )


def _optional_text(label: str, help_text: str, max_length: int) -> serializers.CharField:
    return serializers.CharField(
        label=label,
        help_text=help_text,
        required=False,
        allow_blank=True,
        allow_null=True,
        max_length=max_length,
    )


class FormBooleanField(serializers.BooleanField):
    """A boolean whose absence means "not given" for every client, form
    posts included (DRF reads an absent form field as ``False``, the way an
    unticked checkbox is absent). The browsable form's checkbox sends
    ``false`` from a hidden input placed before it, so an unticked box is
    still told apart from a client that never sent the field
    (clusters/templates/clusters/fields/checkbox.html)."""

    default_empty_html = empty

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("style", {"template": "clusters/fields/checkbox.html"})
        super().__init__(**kwargs)


class RegisterClusterSerializer(InputSerializer):
    name = serializers.CharField(label="Cluster name", max_length=domain.NAME_MAX_LENGTH)
    api_endpoint = serializers.CharField(
        label="API endpoint",
        max_length=domain.ENDPOINT_MAX_LENGTH,
        help_text=_ENDPOINT_HELP,
    )
    username = _optional_text("Username", "user@realm, e.g. root@pam (with password)", 255)
    password = _secret_field("Password", "Password of username; never returned or logged")
    token_id = _optional_text(
        "API token id", "user@realm!name, e.g. root@pam!proxmoxer (instead of a password)", 255
    )
    token_secret = _secret_field("API token secret", "The token's secret; never returned or logged")
    # Absent, from JSON or a form, RegistrationRequest's own default (True)
    # applies; the browser's unticked box sends false (FormBooleanField).
    verify_tls = FormBooleanField(
        label="Verify TLS certificate",
        required=False,
        initial=True,
        help_text="Check the certificate against trusted CAs (a pinned fingerprint replaces this)",
    )
    fingerprint = _optional_text(
        "Certificate fingerprint",
        "SHA-256 fingerprint of the node certificate to pin (AB:CD:…, 64 hex digits)",
        128,
    )
    create_token = serializers.BooleanField(
        label="Hand off to an API token",
        required=False,
        help_text=_CREATE_TOKEN_HELP,
    )
    discover_endpoints = FormBooleanField(
        label="Learn the other nodes' endpoints",
        required=False,
        initial=True,
        help_text=_DISCOVER_HELP,
    )

    def to_request(self) -> domain.RegistrationRequest:
        data = self.validated_or_raise()
        return domain.RegistrationRequest(**data)


class EndpointsField(serializers.JSONField):
    """A PATCH's ``endpoints``: JSON from an API client; from the browsable
    API's form, the text of its box, where blank leaves them as they are."""

    def get_value(self, dictionary: Mapping[str, Any]) -> Any:
        value = super().get_value(dictionary)
        if isinstance(value, str) and not value.strip():
            return empty
        return value


class EditClusterSerializer(InputSerializer):
    """A PATCH: any of the editable fields; anything else is refused by name,
    so that a typo cannot look like success. Used with ``partial=True``: a
    field that is absent is left as it is."""

    name = serializers.CharField(
        label="Cluster name", required=False, max_length=domain.NAME_MAX_LENGTH
    )
    api_endpoint = serializers.CharField(
        label="API endpoint",
        required=False,
        max_length=domain.ENDPOINT_MAX_LENGTH,
        help_text=_ENDPOINT_HELP,
    )
    username = _optional_text("Username", "user@realm, with password to change them", 255)
    password = _secret_field("Password", "Blank keeps the stored credentials")
    token_id = _optional_text("API token id", "user@realm!name, with token_secret", 255)
    token_secret = _secret_field("API token secret", "Blank keeps the stored credentials")
    verify_tls = FormBooleanField(
        label="Verify TLS certificate",
        required=False,
        help_text="Check the certificate against trusted CAs (a pinned fingerprint replaces this)",
    )
    fingerprint = _optional_text(
        "Certificate fingerprint",
        "SHA-256 fingerprint to pin (AB:CD:…); empty or null removes the pin",
        128,
    )
    create_token = serializers.BooleanField(
        label="Hand off to an API token", required=False, help_text=_CREATE_TOKEN_HELP
    )
    endpoints = EndpointsField(
        label="Further endpoints",
        required=False,
        allow_null=True,
        help_text='[{"url": …, "fingerprint": …}]: the other nodes\' API addresses, each '
        "pinned to its certificate; setting them turns their discovery off",
    )
    discover_endpoints = FormBooleanField(
        label="Learn the other nodes' endpoints", required=False, help_text=_DISCOVER_HELP
    )

    def to_request(self) -> domain.EditRequest:
        self._refuse_unknown_fields()
        data = self.validated_or_raise()
        if data.get("endpoints") in ("", None):
            data.pop("endpoints", None)  # a form's blank box: left as it is
        return domain.EditRequest(**data)

    def _refuse_unknown_fields(self) -> None:
        given = self.initial_data if isinstance(self.initial_data, Mapping) else {}
        unknown = sorted(set(given) - set(self.fields) - _FORM_EXTRAS)
        if unknown:
            names = ", ".join(unknown)
            raise InvalidInput(
                f"Unknown field{'s' if len(unknown) > 1 else ''}: {names}; a PATCH may change "
                f"{', '.join(domain.EDITABLE_FIELDS)}",
                {name: ["Unknown field."] for name in unknown},
            )

    @staticmethod
    def current_values(cluster: domain.Cluster) -> dict[str, Any]:
        """The cluster as the edit form shows it: secrets left blank."""
        return {
            "name": cluster.name,
            "api_endpoint": cluster.api_endpoint,
            "username": cluster.username,
            "token_id": cluster.token_id,
            "verify_tls": cluster.verify_tls,
            "fingerprint": cluster.fingerprint,
            "create_token": False,
            "discover_endpoints": cluster.discover_endpoints,
        }


class DeregisterSerializer(InputSerializer):
    """An optional DELETE body: the password of the user owning an API token
    the registry made, so that the token can be deleted on the cluster (PVE
    does not let a token delete itself)."""

    username = _optional_text("Username", "The user owning the registry's API token", 255)
    password = _secret_field("Password", "Used once to delete the token; never stored")

    def to_credentials(self) -> domain.PasswordCredentials | None:
        data = self.validated_or_raise()
        return domain.token_owner(data.get("username"), data.get("password"))


class EndpointSerializer(serializers.Serializer):
    url = serializers.CharField()
    node = serializers.CharField(allow_null=True, help_text="The node behind it, as it said")
    fingerprint = serializers.CharField(
        allow_null=True, help_text="The certificate fingerprint it is pinned to"
    )
    last_ok_at = serializers.DateTimeField(
        allow_null=True, help_text="When a check last got an answer through it"
    )


class ClusterSerializer(serializers.Serializer):
    """A registered cluster as the API shows it: never a password or token secret."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    api_endpoint = serializers.CharField()
    status = serializers.CharField()
    proxmox_version = serializers.CharField()
    node_count = serializers.IntegerField()
    auth_method = serializers.CharField()
    username = serializers.CharField(allow_null=True)
    token_id = serializers.CharField(allow_null=True)
    verify_tls = serializers.BooleanField()
    fingerprint = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    last_checked_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    last_error_details = serializers.JSONField(
        allow_null=True,
        help_text='What to act on about last_error, e.g. {"fingerprint": …} to pin',
    )
    version = serializers.IntegerField(
        help_text="1 at registration, +1 on every change of the configuration"
    )
    cluster_name = serializers.CharField(
        allow_null=True, help_text="The PVE cluster's own name; null for a standalone node"
    )
    nodes_online = serializers.IntegerField(help_text="Nodes online at the last check")
    next_check_at = serializers.DateTimeField(
        allow_null=True,
        help_text="When the background checks look at the cluster next "
        "(null: as soon as a checker is free)",
    )
    endpoints = EndpointSerializer(
        many=True,
        help_text="Every address the service may use for this cluster, the registered one "
        "first; a check tries the one that answered last first",
    )
    discover_endpoints = serializers.BooleanField(
        help_text="Whether the other nodes' endpoints are learned from the cluster"
    )


def cluster_body(cluster: domain.Cluster) -> dict[str, Any]:
    """The cluster as the API shows it: its public form, as a list shows it."""
    return dict(ClusterSerializer(domain.public_cluster(cluster)).data)


# One object, not a list of them: drf-spectacular would otherwise describe
# what a ViewSet's list action returns as an array.
@extend_schema_serializer(many=False)
class ClusterListSerializer(serializers.Serializer):
    """A page of the list (documentation: the list renders ``cluster_page``,
    whose clusters are the same objects as this serializer's)."""

    clusters = ClusterSerializer(many=True)
    total = serializers.IntegerField(help_text="Clusters matching the filters, on every page")
    next = serializers.URLField(allow_null=True, help_text="The next page, null on the last")
    previous = serializers.URLField(allow_null=True, help_text="The page before, null on the first")


# -- the list's query string -------------------------------------------------------

_INTEGER = re.compile(r"-?[0-9]{1,12}")


def _integer(params: QueryDict, name: str, default: int, errors: dict[str, list[str]]) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        errors[name] = [f"{name} must be a whole number"]
        return default
    return int(raw)


def cluster_query(params: QueryDict) -> domain.ClusterQuery:
    """``?limit=&offset=&status=&search=&name=`` as a ClusterQuery; a value
    that is malformed or out of range is ValidationFailed (400) naming it."""
    errors: dict[str, list[str]] = {}
    limit = _integer(params, "limit", domain.DEFAULT_LIMIT, errors)
    offset = _integer(params, "offset", 0, errors)
    try:
        statuses = domain.parse_statuses(params.getlist("status"))
    except domain.ValidationFailed as error:
        errors.update(error.details or {})
        statuses = frozenset()
    if errors:
        raise domain.ValidationFailed(errors)
    return domain.ClusterQuery(
        limit=limit,
        offset=offset,
        statuses=statuses,
        search=params.get("search"),
        name=params.get("name"),
    )


def page_links(
    request: Request, *, limit: int, offset: int, has_next: bool, has_previous: bool
) -> tuple[str | None, str | None]:
    """Links to the pages either side of a limit/offset page, as DRF's
    LimitOffsetPagination writes them: the request's parameters sorted by
    name, ``limit`` set, ``offset`` left out at 0."""
    if not (has_next or has_previous):
        return None, None
    kept = [
        (name, value)
        for name, value in parse_qsl(request.META.get("QUERY_STRING", ""), True)
        if name not in ("limit", "offset")
    ]
    base = request.build_absolute_uri(request.path)

    def link(to: int) -> str:
        paging = [("limit", str(limit))] + ([("offset", str(to))] if to > 0 else [])
        # A stable sort by name keeps a repeated parameter's values in order.
        return f"{base}?{urlencode(sorted(kept + paging, key=lambda item: item[0]))}"

    return (
        link(offset + limit) if has_next else None,
        link(max(offset - limit, 0)) if has_previous else None,
    )


def cluster_page(page: domain.ClusterPage, request: Request) -> dict[str, Any]:
    """The list's body: the page's clusters as the backend gave them (each
    the public form ClusterSerializer writes too) and links to the pages
    either side (``page_links``)."""
    query = page.query
    limit = query.limit if query.limit is not None else len(page.clusters)
    next_url, previous_url = page_links(
        request,
        limit=limit,
        offset=query.offset,
        has_next=page.has_next,
        has_previous=page.has_previous,
    )
    return {
        "clusters": page.clusters,
        "total": page.total,
        "next": next_url,
        "previous": previous_url,
    }


class NodeSerializer(serializers.Serializer):
    """One node as the last successful check saw it; usage figures are null
    where PVE gave none (offline nodes, no Sys.Audit)."""

    name = serializers.CharField()
    status = serializers.CharField(help_text="online, offline or unknown")
    ip = serializers.CharField(allow_null=True)
    ssl_fingerprint = serializers.CharField(allow_null=True)
    cpu = serializers.FloatField(allow_null=True, help_text="CPU load, 0 to 1")
    maxcpu = serializers.IntegerField(allow_null=True)
    mem = serializers.IntegerField(allow_null=True, help_text="bytes used")
    maxmem = serializers.IntegerField(allow_null=True)
    uptime = serializers.IntegerField(allow_null=True, help_text="seconds")


class NodeListSerializer(serializers.Serializer):
    nodes = NodeSerializer(many=True)
    total = serializers.IntegerField()
    checked_at = serializers.DateTimeField(
        allow_null=True, help_text="When the nodes were read; null before the first read"
    )

    def __init__(self, node_list: domain.NodeList | None = None, **kwargs: Any) -> None:
        if node_list is not None:
            kwargs["instance"] = {
                "nodes": node_list.nodes,
                "total": len(node_list.nodes),
                "checked_at": node_list.checked_at,
            }
        super().__init__(**kwargs)


class StatusChangeSerializer(serializers.Serializer):
    """One change of status: ``{"at", "from", "to", "reason"}``."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # "from" is a Python keyword: it cannot be a class attribute.
        return {
            "at": serializers.DateTimeField(),
            "from": serializers.CharField(
                source="from_status", allow_null=True, help_text="null: the registered status"
            ),
            "to": serializers.CharField(source="to_status"),
            "reason": serializers.CharField(),
        }


class HistorySerializer(serializers.Serializer):
    events = StatusChangeSerializer(many=True, help_text="Newest first")
    total = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)


class PageSerializer(InputSerializer):
    """``limit`` and ``offset`` of a paginated list."""

    limit = serializers.IntegerField(min_value=1, max_value=1000, default=100, required=False)
    offset = serializers.IntegerField(min_value=0, default=0, required=False)


class ErrorSerializer(serializers.Serializer):
    """The envelope of every error under /api/ (documentation only)."""

    code = serializers.CharField(help_text="The HTTP status in PascalCase, e.g. BadRequest")
    message = serializers.CharField()
    details = serializers.JSONField(
        allow_null=True, help_text="Field errors, or e.g. the observed certificate fingerprint"
    )


# -- the audit log (docs/product-contract.md §13) -----------------------------------


class AuditEventSerializer(serializers.Serializer):
    """One audit event; ``changes`` maps a field to ``[old, new]``, a
    secret only to ``"changed"``."""

    id = serializers.UUIDField()
    at = serializers.DateTimeField()
    actor = serializers.CharField()
    action = serializers.ChoiceField(choices=[action.value for action in domain.AuditAction])
    outcome = serializers.ChoiceField(choices=[outcome.value for outcome in domain.Outcome])
    status_code = serializers.IntegerField(allow_null=True)
    cluster_id = serializers.UUIDField(allow_null=True)
    cluster_name = serializers.CharField(allow_null=True)
    source_ip = serializers.CharField(allow_null=True)
    changes = serializers.DictField(child=serializers.JSONField())


class AuditEventListSerializer(serializers.Serializer):
    events = AuditEventSerializer(many=True)
    total = serializers.IntegerField(help_text="How many events match the filters in all")
    next = serializers.URLField(allow_null=True, help_text="The next page, or null")
    previous = serializers.URLField(allow_null=True, help_text="The previous page, or null")


class AuditQuerySerializer(InputSerializer):
    """The query string of GET /api/v1/audit-events."""

    action = serializers.ChoiceField(
        choices=[action.value for action in domain.AuditAction], required=False
    )
    outcome = serializers.ChoiceField(
        choices=[outcome.value for outcome in domain.Outcome], required=False
    )
    actor = serializers.CharField(required=False, max_length=150, help_text="A username")
    cluster = serializers.CharField(
        required=False,
        max_length=domain.NAME_MAX_LENGTH,
        help_text="A cluster's id, or its name as the event recorded it",
    )
    since = serializers.DateTimeField(
        required=False, help_text="RFC 3339; events at or after (UTC if no offset is given)"
    )
    until = serializers.DateTimeField(required=False, help_text="RFC 3339; events before")
    limit = serializers.IntegerField(
        required=False, default=50, min_value=1, max_value=domain.AUDIT_PAGE_MAX
    )
    offset = serializers.IntegerField(required=False, default=0, min_value=0, max_value=10**9)

    def to_query(self) -> domain.AuditQuery:
        data = self.validated_or_raise()
        cluster = data.get("cluster")
        cluster_id = None
        if cluster is not None:
            with contextlib.suppress(domain.InvalidClusterId):  # then it is a name
                cluster_id = domain.parse_cluster_id(cluster)
        return domain.AuditQuery(
            action=domain.AuditAction(data["action"]) if "action" in data else None,
            outcome=domain.Outcome(data["outcome"]) if "outcome" in data else None,
            actor=data.get("actor"),
            cluster_id=cluster_id,
            cluster_name=cluster if cluster is not None and cluster_id is None else None,
            since=data.get("since"),
            until=data.get("until"),
            limit=data["limit"],
            offset=data["offset"],
        )
