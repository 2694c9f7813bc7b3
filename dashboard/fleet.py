"""The clusters table: which clusters the filters ask for, a page at a time,
and how many there are in each status — read through the registry's list
use case (docs/product-contract.md §12), as the REST API reads them."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms

from clusters.domain import Actor, ClusterQuery, ClusterStatus, ValidationFailed
from clusters.domain.listing import SEARCH_MAX_LENGTH
from clusters.wiring import services
from dashboard.presenters import STATUS_BADGES, ClusterRow, StatusBadge

PAGE_SIZE = 100


class FleetFilters(forms.Form):
    """The filters above the table, as a GET form: they work without
    JavaScript and a filtered view is a link one can share."""

    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), *((b.value, b.label) for b in STATUS_BADGES.values())],
    )
    search = forms.CharField(
        required=False,
        max_length=SEARCH_MAX_LENGTH,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Name or endpoint"}),
    )
    offset = forms.IntegerField(required=False, min_value=0, widget=forms.HiddenInput)

    def query(self) -> ClusterQuery:
        """The page the filters ask for; what fails its check is left out
        (the form shows why)."""
        self.is_valid()
        data = self.cleaned_data
        status = data.get("status")
        wanted = {
            "limit": PAGE_SIZE,
            "offset": data.get("offset") or 0,
            "statuses": frozenset({ClusterStatus(status)}) if status else frozenset(),
            "search": (data.get("search") or "").strip() or None,
        }
        try:
            return ClusterQuery(**wanted)
        except ValidationFailed as error:  # the list's own rules (control characters, range)
            for field, messages in (error.details or {}).items():
                for message in messages:
                    self.add_error(field if field in self.fields else None, message)
                wanted.pop(field, None)
            return ClusterQuery(**wanted)


@dataclass(frozen=True)
class StatusCount:
    badge: StatusBadge
    count: int


@dataclass(frozen=True)
class Fleet:
    rows: list[ClusterRow]
    total: int  # clusters matching the filters, on every page
    offset: int
    counts: list[StatusCount]  # every registered cluster, by status
    limit: int = PAGE_SIZE

    @property
    def registered(self) -> int:
        return sum(item.count for item in self.counts)

    @property
    def first(self) -> int:
        return self.offset + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.rows)

    @property
    def previous_offset(self) -> int | None:
        return max(self.offset - self.limit, 0) if self.offset > 0 else None

    @property
    def next_offset(self) -> int | None:
        return self.last if self.last < self.total else None


def read_fleet(actor: Actor, filters: FleetFilters) -> Fleet:
    registry = services().clusters
    query = filters.query()
    page = registry.list_clusters(query, actor=actor)
    # How many in each status: a page of one each, for its total.
    counts = [
        StatusCount(
            badge,
            registry.list_clusters(
                ClusterQuery(limit=1, statuses=frozenset({ClusterStatus(badge.value)})),
                actor=actor,
            ).total,
        )
        for badge in STATUS_BADGES.values()
    ]
    rows = [ClusterRow.of(cluster) for cluster in page.clusters]
    return Fleet(rows, page.total, query.offset, counts)
