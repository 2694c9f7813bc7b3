"""The register and edit forms, and where each error the registry reports
is shown.

The forms only bound sizes; every rule a field obeys is the domain's
(``RegistrationRequest.validate``, ``EditRequest.validate``), so the
dashboard, the REST API and ``manage.py`` refuse the same input with the
same words. A secret is never rendered back into a page: password inputs
stay empty, and in the edit form an empty one keeps the stored secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms

from clusters.domain import (
    ENDPOINT_MAX_LENGTH,
    NAME_MAX_LENGTH,
    NOT_GIVEN,
    SECRET_MAX_LENGTH,
    Cluster,
    ClusterError,
    ClusterNameTaken,
    EditRequest,
    NetworkPolicyRefused,
    ProxmoxAuthenticationFailed,
    ProxmoxBadResponse,
    ProxmoxTLSError,
    ProxmoxUnreachable,
    RegistrationRequest,
    TokenHandOffRefused,
    ValidationFailed,
)

PASSWORD = "password"
TOKEN = "token"
SECRET_FIELD = {PASSWORD: "password", TOKEN: "token_secret"}
PRINCIPAL_FIELD = {PASSWORD: "username", TOKEN: "token_id"}
FINGERPRINT_MAX_LENGTH = 128  # 64 hex digits with colons is 95; room for stray spaces


def _secret(label: str, help_text: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        help_text=help_text,
        required=False,
        strip=False,
        max_length=SECRET_MAX_LENGTH,
        # render_value=False: what was typed is never sent back in a page.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )


def _typed_text(label: str, max_length: int, help_text: str = "") -> forms.CharField:
    """A text field for addresses and ids: no spell checking, no capitals."""
    return forms.CharField(
        label=label,
        max_length=max_length,
        required=False,
        help_text=help_text,
        widget=forms.TextInput(attrs={"spellcheck": "false", "autocapitalize": "off"}),
    )


class ClusterFields(forms.Form):
    """Fields a cluster is configured with, shared by the register and edit forms."""

    name = forms.CharField(label="Name", max_length=NAME_MAX_LENGTH, required=False)
    api_endpoint = _typed_text(
        "API endpoint",
        ENDPOINT_MAX_LENGTH,
        "https://host:8006, or just the host: https:// and port 8006 are added",
    )
    auth_method = forms.ChoiceField(
        label="Sign in with",
        choices=[(TOKEN, "API token"), (PASSWORD, "User and password")],
        initial=TOKEN,
        widget=forms.RadioSelect,
    )
    token_id = _typed_text("API token id", 255, "user@realm!name, e.g. root@pam!proxmoxer")
    token_secret = _secret("Token secret", "Never shown again, never logged")
    username = _typed_text("Username", 255, "user@realm, e.g. root@pam")
    password = _secret("Password", "Never shown again, never logged")
    create_token = forms.BooleanField(
        label="Hand off to an API token",
        required=False,
        help_text="proxmoxer creates its own API token with this user (read-only: PVEAuditor "
        "on /) and keeps only the token, never the password",
    )
    verify_tls = forms.BooleanField(
        label="Verify the certificate",
        required=False,
        initial=True,
        help_text="Against trusted CAs; a pinned fingerprint below replaces this check",
    )
    fingerprint = _typed_text(
        "Pinned certificate fingerprint",
        FINGERPRINT_MAX_LENGTH,
        "SHA-256, AB:CD:… (64 hex digits); optional",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("name", "api_endpoint"):
            self.fields[name].widget.attrs["required"] = True

    @property
    def auth_method_chosen(self) -> str:
        method = self.data.get("auth_method") if self.is_bound else self.initial.get("auth_method")
        return method if method in SECRET_FIELD else TOKEN

    @property
    def secret_field(self) -> str:
        return SECRET_FIELD[self.auth_method_chosen]

    def secret_typed(self) -> str:
        return self.cleaned_data.get(self.secret_field) or ""

    def show(self, error: ClusterError) -> None:
        """Put ``error`` beside the field it is about (or above the form)."""
        if isinstance(error, ValidationFailed) and error.details:
            for key, messages in error.details.items():
                field = key if key in self.fields else None
                for message in messages:
                    self.add_error(field, message)
            return
        field: str | None = None
        if isinstance(error, ClusterNameTaken):
            field = "name"
        elif isinstance(error, TokenHandOffRefused):
            field = "create_token"
        elif isinstance(error, ProxmoxAuthenticationFailed):
            field = self.secret_field
        elif isinstance(error, ProxmoxTLSError):
            field = "fingerprint" if (error.details or {}).get("fingerprint") else "api_endpoint"
        elif isinstance(error, (ProxmoxUnreachable, ProxmoxBadResponse, NetworkPolicyRefused)):
            field = "api_endpoint"
        self.add_error(field, error.message)

    def typed(self) -> dict[str, Any]:
        """What was typed, without the secret: enough to show the form again
        or, with the secret added back, to send."""
        method = self.auth_method_chosen
        data = self.cleaned_data
        return {
            "name": data.get("name") or "",
            "api_endpoint": data.get("api_endpoint") or "",
            "auth_method": method,
            PRINCIPAL_FIELD[method]: data.get(PRINCIPAL_FIELD[method]) or "",
            "create_token": method == PASSWORD and bool(data.get("create_token")),
            "verify_tls": bool(data.get("verify_tls")),
            "fingerprint": data.get("fingerprint") or "",
        }

    @classmethod
    def showing(cls, typed: dict[str, Any]) -> ClusterFields:
        """A bound form holding ``typed`` (so errors can be added to it), as
        a browser would send it: an unticked box absent."""
        data = {key: value for key, value in typed.items() if value is not False}
        form = cls(data)
        form.is_valid()
        return form


class RegisterForm(ClusterFields):
    pass


def _as_sent(typed: dict[str, Any], secret: str | None, *, absent: Any) -> dict[str, Any]:
    """The fields of a registration or an edit: every field as shown, the
    principal and secret of the chosen method only (``absent`` where empty),
    and no pin where the pin is empty."""
    method = typed["auth_method"]
    principal = PRINCIPAL_FIELD[method]
    return {
        "name": typed["name"],
        "api_endpoint": typed["api_endpoint"],
        "verify_tls": typed["verify_tls"],
        "fingerprint": typed["fingerprint"] or None,
        "create_token": typed["create_token"],
        principal: typed.get(principal) or absent,
        SECRET_FIELD[method]: secret or absent,
    }


def registration_request(typed: dict[str, Any], secret: str) -> RegistrationRequest:
    """The registration ``typed`` describes, with the secret of its method."""
    return RegistrationRequest(**_as_sent(typed, secret, absent=None))


class EditForm(ClusterFields):
    """The register form's fields showing a cluster's configuration, and the
    version it showed (a change made meanwhile is not overwritten unseen)."""

    version = forms.IntegerField(min_value=1, widget=forms.HiddenInput)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRET_FIELD.values():
            self.fields[name].help_text = "Leave empty to keep the stored one"
        self.fields["fingerprint"].help_text = (
            "SHA-256, AB:CD:… (64 hex digits); empty: no pin, the certificate is checked "
            "against trusted CAs"
        )

    @classmethod
    def of(cls, cluster: Cluster) -> EditForm:
        method = str(cluster.auth_method)
        return cls(
            initial={
                "name": cluster.name,
                "api_endpoint": cluster.api_endpoint,
                "auth_method": method,
                PRINCIPAL_FIELD[method]: getattr(cluster, PRINCIPAL_FIELD[method]),
                "verify_tls": cluster.verify_tls,
                "fingerprint": cluster.fingerprint or "",
                "version": cluster.version,
            }
        )

    def typed(self) -> dict[str, Any]:
        return {**super().typed(), "version": self.cleaned_data.get("version")}


def edit_request(typed: dict[str, Any], secret: str | None) -> EditRequest:
    """The edit ``typed`` describes: the credentials stay as they are when
    the secret is empty and the principal the stored one; an emptied pin is
    removed."""
    return EditRequest(**_as_sent(typed, secret, absent=NOT_GIVEN))


@dataclass(frozen=True)
class TrustOffer:
    """An untrusted certificate the operator may choose to pin: what the
    server presented, and where the change waiting for it is sent."""

    endpoint: str
    fingerprint: str
    handle: str
    action: str  # the URL the button posts to
    button: str  # "Trust this certificate and register", "… and save"


def untrusted_fingerprint(error: ClusterError) -> str | None:
    """The fingerprint of a certificate nothing vouched for; None for other
    errors, and for a certificate that differs from a pin already given
    (that is a mismatch to look into, not a certificate to accept)."""
    if not isinstance(error, ProxmoxTLSError):
        return None
    details = error.details or {}
    if details.get("expected_fingerprint"):
        return None
    fingerprint = details.get("fingerprint")
    return fingerprint if isinstance(fingerprint, str) else None
