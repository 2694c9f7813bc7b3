"""A cluster's endpoints and their health as documents: the JSON columns
the database backend stores them in, and the ``endpoints`` of the API's
cluster (``public_endpoints``), built straight from those documents so that a
list needs no domain object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from clusters.domain.moments import parse_rfc3339, rfc3339
from clusters.domain.topology import EndpointHealth, NodeEndpoint


def endpoints_document(endpoints: Sequence[NodeEndpoint]) -> list[dict[str, str | None]]:
    return [endpoint.as_dict() for endpoint in endpoints]


def endpoints_from_document(document: object) -> tuple[NodeEndpoint, ...]:
    if not isinstance(document, list):
        return ()
    return tuple(
        NodeEndpoint(item["url"], item.get("node"), item.get("fingerprint"))
        for item in document
        if isinstance(item, dict) and isinstance(item.get("url"), str)
    )


def health_document(health: Mapping[str, EndpointHealth]) -> dict[str, dict[str, str | None]]:
    """``{url: {"last_ok_at": RFC 3339 | None, "last_failed_at": …}}``."""
    return {
        url: {
            "last_ok_at": rfc3339_or_none(state.last_ok_at),
            "last_failed_at": rfc3339_or_none(state.last_failed_at),
        }
        for url, state in health.items()
    }


def health_from_document(document: object) -> dict[str, EndpointHealth]:
    if not isinstance(document, dict):
        return {}
    return {
        url: EndpointHealth(
            parse_rfc3339(state.get("last_ok_at")), parse_rfc3339(state.get("last_failed_at"))
        )
        for url, state in document.items()
        if isinstance(state, dict)
    }


def public_endpoints(
    api_endpoint: str,
    registered_node: str | None,
    fingerprint: str | None,
    further: object,
    health: object,
) -> list[dict[str, str | None]]:
    """``endpoints`` as the API shows it: the registered endpoint first,
    then the further ones, each with when a check last got an answer
    through it. From the documents as stored, so that a list can build it
    straight from the columns."""
    states = health if isinstance(health, dict) else {}

    def last_ok(url: str) -> str | None:
        state = states.get(url)
        return state.get("last_ok_at") if isinstance(state, dict) else None

    shown = [
        {
            "url": api_endpoint,
            "node": registered_node,
            "fingerprint": fingerprint,
            "last_ok_at": last_ok(api_endpoint),
        }
    ]
    for item in further if isinstance(further, list) else ():
        if isinstance(item, dict) and item.get("url") != api_endpoint:
            url = item.get("url")
            shown.append(
                {
                    "url": url,
                    "node": item.get("node"),
                    "fingerprint": item.get("fingerprint"),
                    "last_ok_at": last_ok(url) if isinstance(url, str) else None,
                }
            )
    return shown


def rfc3339_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)
