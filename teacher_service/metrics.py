"""Prometheus metrics, in a registry owned by the app (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    """Counters and latency histograms of one app instance."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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

    def render(self) -> bytes:
        """Prometheus text exposition."""
        return generate_latest(self.registry)
