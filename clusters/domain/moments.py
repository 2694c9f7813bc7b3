"""Moments as the API and the stored documents write them: RFC 3339."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(moment: datetime) -> str:
    """``moment`` in UTC as RFC 3339, as DRF's DateTimeField writes it: ISO
    8601 with microseconds when there are any, ``Z`` for UTC."""
    text = moment.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def parse_rfc3339(text: object) -> datetime | None:
    """What ``rfc3339`` wrote, back; None for anything else."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
