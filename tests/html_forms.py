"""What a browser would send for a form of a page: a test reads the form the
page really renders (its hidden inputs, the values it shows, the boxes it
ticks) instead of assuming it."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    """One ``<form>``: its attributes and its inputs, in page order."""

    attrs: dict[str, str]
    inputs: list[dict[str, str]] = field(default_factory=list)

    def field_names(self) -> set[str]:
        return {i["name"] for i in self.inputs if i.get("name")}

    def input(self, name: str, type_: str | None = None) -> dict[str, str]:
        for element in self.inputs:
            if element.get("name") == name and (type_ is None or element.get("type") == type_):
                return element
        raise KeyError(name)

    def submission(self, **typed: str | bool) -> list[tuple[str, str]]:
        """The (name, value) pairs a browser sends, after the user typed into
        (str) or ticked and unticked (bool) the named fields: an unticked box
        is left out, as browsers do."""
        pairs: list[tuple[str, str]] = []
        for element in self.inputs:
            name = element.get("name")
            if not name:
                continue
            kind = element.get("type", "text")
            if kind == "checkbox":
                ticked = typed[name] if isinstance(typed.get(name), bool) else "checked" in element
                if ticked:
                    pairs.append((name, element.get("value", "on")))
            elif kind == "hidden" or name not in typed:
                pairs.append((name, element.get("value", "")))
            else:
                pairs.append((name, str(typed[name])))
        return pairs


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._current: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if "checked" in (name for name, _ in attrs):
            values["checked"] = "checked"
        if tag == "form":
            self._current = Form(values)
            self.forms.append(self._current)
        elif tag in ("input", "textarea", "select") and self._current is not None:
            values.setdefault("type", "text" if tag == "input" else tag)
            self._current.inputs.append(values)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def forms(html: str) -> list[Form]:
    parser = _FormParser()
    parser.feed(html)
    return parser.forms


def form_with(html: str, **attrs: str) -> Form:
    """The first form whose attributes include ``attrs`` (``data_method="PATCH"``)."""
    wanted = {name.replace("_", "-"): value for name, value in attrs.items()}
    for candidate in forms(html):
        matches = all(candidate.attrs.get(name) == value for name, value in wanted.items())
        if matches and candidate.field_names() - {
            "csrfmiddlewaretoken",
            "_content_type",
            "_content",
        }:
            return candidate
    raise AssertionError(f"no form with {wanted} on the page")
