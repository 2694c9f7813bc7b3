"""Filters the dashboard's templates use to show numbers people read."""

from __future__ import annotations

from django import template
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

register = template.Library()


@register.filter
def percent(fraction: float | None) -> str:
    """0.123 → "12 %"; nothing for an unknown value."""
    if fraction is None:
        return "—"
    return f"{fraction * 100:.0f} %"


@register.filter
def uptime(seconds: int | None) -> str:
    """Seconds → the two largest units, e.g. "3 d 4 h", "5 min"."""
    if seconds is None:
        return "—"
    units = (("d", 86_400), ("h", 3_600), ("min", 60), ("s", 1))
    parts: list[str] = []
    remaining = int(seconds)
    for unit, size in units:
        if remaining >= size or (unit == "s" and not parts):
            parts.append(f"{remaining // size} {unit}")
            remaining %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


@register.simple_tag(takes_context=True)
def query_with_offset(context: template.Context, offset: int) -> str:
    """This page's query string, at another ``offset`` (filters kept)."""
    query = context["request"].GET.copy()
    query["offset"] = str(offset)
    return query.urlencode()


@register.filter
def breakable(text: str) -> str:
    """``AB:CD:…`` that a narrow screen may wrap after a colon, never
    inside a pair of digits (copying it still gives the plain text)."""
    escaped = [str(conditional_escape(part)) for part in str(text).split(":")]
    return mark_safe(":<wbr>".join(escaped))  # noqa: S308 - every part is escaped
