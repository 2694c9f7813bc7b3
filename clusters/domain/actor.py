"""Who acts: every use case is told, so that permissions and the audit
record can be decided below the API, the same way for a web request, a
management command and a background job."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Actor:
    """The principal behind one call of a use case.

    ``username`` is the registry's own account (not a Proxmox one);
    ``source_ip`` is where a web request came from, None for local callers.
    """

    username: str
    is_superuser: bool = False
    groups: frozenset[str] = frozenset()
    source_ip: str | None = None
    is_system: bool = False

    @classmethod
    def system(cls) -> Actor:
        """The registry itself, for background work no person asked for."""
        return cls(username="system", is_system=True)

    @classmethod
    def command_line(cls, username: str = "manage.py") -> Actor:
        """Whoever runs a management command on the server: they hold the
        database and the keys already, so they act as a superuser."""
        return cls(username=username, is_superuser=True)

    def __str__(self) -> str:
        return self.username
