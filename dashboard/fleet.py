"""The clusters table: which clusters the filters ask for, a page at a time,
read through the registry's list use case."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms

from clusters.domain import Actor, ClusterStatus, name_key
from clusters.wiring import services
from dashboard.presenters import STATUS_BADGES, ClusterRow, StatusBadge

PAGE_SIZE = 100
SEARCH_MAX_LENGTH = 255


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

    def query(self) -> tuple[ClusterStatus | None, str, int]:
        """The status, search and offset asked for; what fails its check is
        left out (the form shows why)."""
        self.is_valid()
        data = self.cleaned_data
        status = data.get("status")
        return (
            ClusterStatus(status) if status else None,
            (data.get("search") or "").strip(),
            data.get("offset") or 0,
        )


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
    status, search, offset = filters.query()
    listing = services().clusters.list_clusters(actor=actor)
    key = name_key(search)
    matching = [
        cluster
        for cluster in listing.clusters
        if (status is None or cluster.status == status)
        and (key in name_key(cluster.name) or key in name_key(cluster.api_endpoint))
    ]
    page = matching[offset : offset + PAGE_SIZE]
    counts = [
        StatusCount(badge, sum(1 for cluster in listing.clusters if cluster.status == badge.value))
        for badge in STATUS_BADGES.values()
    ]
    return Fleet([ClusterRow.of(cluster) for cluster in page], len(matching), offset, counts)
