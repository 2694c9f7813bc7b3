"""Fakes handed to ClusterService through its constructor."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from clusters.domain import (
    ClusterStatusEntry,
    ConnectionTarget,
    Credentials,
    ProxmoxReport,
)
from clusters.services import CheckOutcome

HEALTHY_REPORT = ProxmoxReport(
    version="8.2.4",
    cluster_status=[
        ClusterStatusEntry("cluster", "prod", quorate=True),
        ClusterStatusEntry("node", "pve1", online=True),
        ClusterStatusEntry("node", "pve2", online=True),
        ClusterStatusEntry("node", "pve3", online=True),
    ],
)


@dataclass
class FakeProxmox:
    """Answers ``inspect`` with a report, or raises an error; records calls."""

    report: ProxmoxReport = HEALTHY_REPORT
    error: Exception | None = None
    before_answer: Callable[[], None] | None = None
    calls: list[tuple[ConnectionTarget, Credentials]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def inspect(self, target: ConnectionTarget, credentials: Credentials) -> ProxmoxReport:
        with self._lock:
            self.calls.append((target, credentials))
        if self.before_answer is not None:
            self.before_answer()
        if self.error is not None:
            raise self.error
        return self.report


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class RecordingObserver:
    """A check observer that keeps what it is told."""

    finished: list[tuple[CheckOutcome, float]] = field(default_factory=list)

    def check_finished(self, outcome: CheckOutcome, seconds: float) -> None:
        self.finished.append((outcome, seconds))
