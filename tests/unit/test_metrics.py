"""The Prometheus metrics of one app: the teacher-wait counters read from the runtimes."""

from __future__ import annotations

from dataclasses import dataclass, field

from teacher_service.metrics import Metrics


@dataclass
class _Runtime:
    name: str
    waits: int = 0
    wait_seconds: float = 0.0


@dataclass
class _Manager:
    runtimes: list[_Runtime] = field(default_factory=list)

    def all(self) -> list[_Runtime]:
        return self.runtimes


def test_teacher_waits_are_read_at_each_scrape_from_the_watched_manager() -> None:
    metrics = Metrics()
    first = _Manager([_Runtime("a", 2, 0.5)])
    metrics.watch(first)
    text = metrics.render().decode()
    assert 'autocurriculum_teacher_waits_total{experiment="a"} 2.0' in text
    assert 'autocurriculum_teacher_wait_seconds_total{experiment="a"} 0.5' in text
    first.runtimes[0].waits = 3  # read when scraped, not copied when watched
    assert 'autocurriculum_teacher_waits_total{experiment="a"} 3.0' in metrics.render().decode()
    # The app started again with a new manager: only its experiments are exposed.
    metrics.watch(_Manager([_Runtime("b")]))
    text = metrics.render().decode()
    assert 'experiment="a"' not in text
    assert 'autocurriculum_teacher_waits_total{experiment="b"} 0.0' in text
