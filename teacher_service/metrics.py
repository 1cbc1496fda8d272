"""Prometheus metrics, in a registry owned by the app (no global state)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class Metrics:
    """Counters and latency histograms of one app instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._waits: _TeacherWaits | None = None
        self.tasks_issued = Counter(
            "autocurriculum_tasks_issued", "Tasks issued", ["experiment"], registry=self.registry
        )
        self.reports_accepted = Counter(
            "autocurriculum_reports_accepted",
            "Reports accepted",
            ["experiment"],
            registry=self.registry,
        )
        self.reports_duplicate = Counter(
            "autocurriculum_reports_duplicate",
            "Repeated reports acknowledged and ignored",
            ["experiment"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "autocurriculum_request_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
        )

    def watch(self, experiments: _Experiments) -> None:
        """Also expose, at each scrape, how long each experiment's calls waited for its
        teacher's background work (a fit due but not finished): if they often wait, the
        fits need more fit processes or a longer ``fit_delay``."""
        if self._waits is not None:  # the app started again: watch its new manager
            self.registry.unregister(self._waits)
        self._waits = _TeacherWaits(experiments)
        self.registry.register(self._waits)

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)


class _Runtime(Protocol):
    name: str
    waits: int
    wait_seconds: float


class _Experiments(Protocol):
    def all(self) -> Sequence[_Runtime]: ...


class _TeacherWaits(Collector):
    """``autocurriculum_teacher_waits_total`` and ``..._wait_seconds_total`` per experiment,
    read from the runtimes when scraped."""

    def __init__(self, experiments: _Experiments) -> None:
        self.experiments = experiments

    def collect(self) -> Iterator[Metric]:
        waits = CounterMetricFamily(
            "autocurriculum_teacher_waits",
            "Calls that waited for the teacher's background work (a fit due but not finished)",
            labels=["experiment"],
        )
        seconds = CounterMetricFamily(
            "autocurriculum_teacher_wait_seconds",
            "Seconds calls waited for the teacher's background work",
            labels=["experiment"],
        )
        for rt in self.experiments.all():
            waits.add_metric([rt.name], rt.waits)
            seconds.add_metric([rt.name], rt.wait_seconds)
        yield waits
        yield seconds
