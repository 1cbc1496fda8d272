"""A suite of MiniGrid envs for the discrete teachers (``random``, ``lp``, ``omni``, ``sec``):
registered gymnasium ids from easy to hard, each with a text description of what it asks (the
descriptions feed OMNI's model of interestingness) and a family as its category.

A discrete experiment over these names is what ``autocurriculum train`` plays with the Ray
students (a task ``{"task": "MiniGrid-DoorKey-5x5-v0"}`` is an episode of that env, with the
seven MiniGrid actions). The suite holds near-duplicates on purpose (a fixed and a random start
in the same empty room; one door-and-key task at three sizes), which is where a model of
interestingness matters, and three *hard* envs that a student is measured on at the end
(``benchmarks/minigrid_suite.py``): DoorKey 8x8, KeyCorridor S3R1 and MultiRoom N2-S4.

The success rate of a uniformly random 7-action policy (100 episodes each, view 5) is in each
entry's ``random_success``: a rough guide to the order, measured without any training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from api_schemas.spaces import DiscreteSpace, DiscreteTaskSpec

__all__ = [
    "HARD_ENVS",
    "SUITE",
    "SUITE_ENVS",
    "SuiteEnv",
    "suite_entry",
    "suite_space",
]


@dataclass(frozen=True)
class SuiteEnv:
    """One env of the suite.

    Attributes:
        env_id: its gymnasium id (the discrete task's name).
        description: what the task asks, in one line.
        category: its family (``empty``, ``lava``, ``doorkey``, ``unlock``, ``keycorridor``,
            ``multiroom``).
        hard: one of the envs the student is measured on at the end.
        random_success: success rate of a uniformly random 7-action policy (measured).
    """

    env_id: str
    description: str
    category: str
    hard: bool = False
    random_success: float = 0.0


#: The suite, from easy to hard.
SUITE: tuple[SuiteEnv, ...] = (
    SuiteEnv(
        "MiniGrid-Empty-5x5-v0",
        "Reach the green goal square in an empty 5x5 room, starting in the top-left corner",
        "empty",
        random_success=0.41,
    ),
    SuiteEnv(
        "MiniGrid-Empty-Random-5x5-v0",
        "Reach the green goal square in an empty 5x5 room, starting at a random place",
        "empty",
        random_success=0.49,
    ),
    SuiteEnv(
        "MiniGrid-Empty-6x6-v0",
        "Reach the green goal square in an empty 6x6 room, starting in the top-left corner",
        "empty",
        random_success=0.34,
    ),
    SuiteEnv(
        "MiniGrid-Empty-Random-6x6-v0",
        "Reach the green goal square in an empty 6x6 room, starting at a random place",
        "empty",
        random_success=0.42,
    ),
    SuiteEnv(
        "MiniGrid-LavaGapS5-v0",
        "Cross the one gap in a wall of lava to reach the green goal square in a 5x5 room; "
        "stepping on lava ends the episode",
        "lava",
        random_success=0.09,
    ),
    SuiteEnv(
        "MiniGrid-DoorKey-5x5-v0",
        "Pick up the key, open the locked door with it, then reach the green goal square in "
        "a 5x5 room",
        "doorkey",
        random_success=0.10,
    ),
    SuiteEnv(
        "MiniGrid-Unlock-v0",
        "Pick up the key and unlock the door between two rooms; opening the door completes "
        "the task",
        "unlock",
        random_success=0.01,
    ),
    SuiteEnv(
        "MiniGrid-DoorKey-6x6-v0",
        "Pick up the key, open the locked door with it, then reach the green goal square in "
        "a 6x6 room",
        "doorkey",
        random_success=0.05,
    ),
    SuiteEnv(
        "MiniGrid-DoorKey-8x8-v0",
        "Pick up the key, open the locked door with it, then reach the green goal square in "
        "an 8x8 room",
        "doorkey",
        hard=True,
        random_success=0.02,
    ),
    SuiteEnv(
        "MiniGrid-KeyCorridorS3R1-v0",
        "Find the key in a side room of a corridor, unlock the door of another room with it "
        "and pick up the ball behind that door",
        "keycorridor",
        hard=True,
        random_success=0.06,
    ),
    SuiteEnv(
        "MiniGrid-MultiRoom-N2-S4-v0",
        "Go through two small connected rooms, opening the door between them, to reach the "
        "green goal square within 40 steps",
        "multiroom",
        hard=True,
        random_success=0.01,
    ),
)

#: Every env id of the suite, from easy to hard.
SUITE_ENVS: tuple[str, ...] = tuple(e.env_id for e in SUITE)
#: The hard envs the students are measured on at the end.
HARD_ENVS: tuple[str, ...] = tuple(e.env_id for e in SUITE if e.hard)

_BY_ID = {e.env_id: e for e in SUITE}


def suite_entry(env_id: str) -> SuiteEnv:
    """The suite's entry of ``env_id``.

    Raises:
        KeyError: ``env_id`` is not in the suite (the message lists the suite).
    """
    try:
        return _BY_ID[env_id]
    except KeyError:
        raise KeyError(f"{env_id!r} is not in the MiniGrid suite {list(SUITE_ENVS)}") from None


def suite_space(envs: Iterable[str] | None = None, *, include_hard: bool = True) -> dict[str, Any]:
    """The discrete space JSON of the suite (``{"kind": "discrete", "tasks": [{"name",
    "description", "category"}, ...]}``), ready for ``POST /v1/experiments``.

    Args:
        envs: the env ids to include, in the order given (default: the whole suite, easy to
            hard).
        include_hard: keep the hard envs (``False``: train on the others only, and measure
            the hard ones zero-shot).

    Raises:
        KeyError: an env id that is not in the suite.
        ValueError: nothing left to include, or an env id given twice.
    """
    chosen = [suite_entry(e) for e in (SUITE_ENVS if envs is None else envs)]
    if not include_hard:
        chosen = [e for e in chosen if not e.hard]
    if not chosen:
        raise ValueError("the suite space would have no tasks")
    # The service's own model checks the names and the lengths before anything is sent.
    space = DiscreteSpace(
        tasks=[
            DiscreteTaskSpec(name=e.env_id, description=e.description, category=e.category)
            for e in chosen
        ]
    )
    return space.model_dump(mode="json", exclude_none=True)
