"""What the dashboard receives: one ``DashboardFrame`` per update.

``GET /v1/experiments/{id}/dashboard`` answers one frame; ``GET /v1/experiments/{id}/events``
streams them (server-sent events named ``frame``). Every series in a frame is downsampled
on the server to at most ``max_points`` points, so a frame stays small however long or
fast the experiment runs.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from api_schemas.experiments import ExperimentCounters
from api_schemas.spaces import TaskSpace
from api_schemas.wire import RESPONSE


class Throughput(BaseModel):
    """Rates over the last ``window_s`` seconds of the event log (server clock)."""

    model_config = RESPONSE

    tasks_per_s: float
    reports_per_s: float
    window_s: float


class ProgressSeries(BaseModel):
    """The report stream, downsampled: point ``i`` summarises consecutive reports.

    All lists have the same length. ``reports`` and ``tasks`` are cumulative counts at the
    end of the point; ``mean_return`` is the mean episode return of the point's reports;
    ``success_rate`` is the share of its reports with ``success: true`` among those that
    said (``None`` when none did). ``bucket`` is how many reports one point summarises now
    (it doubles each time the series is halved to stay under ``max_points``).
    """

    model_config = RESPONSE

    t: list[float] = Field(default_factory=list, description="Server time at the point's end.")
    reports: list[int] = Field(default_factory=list)
    tasks: list[int] = Field(default_factory=list)
    mean_return: list[float] = Field(default_factory=list)
    success_rate: list[float | None] = Field(default_factory=list)
    bucket: int = 1


class EvaluationSeries(BaseModel):
    """Held-out results for one environment (e.g. one test maze), oldest first."""

    model_config = RESPONSE

    env: str
    t: list[float] = Field(default_factory=list, description="Server time the result arrived.")
    env_steps: list[int | None] = Field(default_factory=list)
    solve_rate: list[float] = Field(default_factory=list)
    mean_return: list[float] = Field(default_factory=list)


class RecentLevel(BaseModel):
    """A level recently issued as a task (for the page's gallery of recent levels)."""

    model_config = RESPONSE

    index: int = Field(description="The task's index.")
    level: str = Field(
        description="The level's encoding (built from the params for a box "
        "space with a parametric generator)."
    )
    mode: str
    params: dict[str, Any] | None = None
    agent_id: str | None = Field(
        default=None, description="The agent that plays the task (POET's pairs, PAIRED's roles)."
    )


class DashboardFrame(BaseModel):
    """Everything the live page draws for one experiment at one moment."""

    model_config = RESPONSE

    id: str
    name: str
    teacher_kind: str
    space: TaskSpace
    hyperparameters: dict[str, Any] = Field(description="The teacher's config (kind included).")
    seq: int = Field(description="Last event of the log folded into this frame.")
    time: float = Field(description="Server time the frame was made.")
    counters: ExperimentCounters
    throughput: Throughput
    progress: ProgressSeries
    evaluations: list[EvaluationSeries]
    teacher: dict[str, Any] = Field(description="The teacher's own view (as in /state).")
    recent_levels: list[RecentLevel] = Field(
        default_factory=list,
        description="The last levels issued, newest first (level spaces and box spaces with a "
        "parametric generator).",
    )
    max_points: int
