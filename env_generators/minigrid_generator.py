"""The ``minigrid`` level generator: random MiniGrid mazes in the ASCII encoding of
:mod:`env_generators.levels` (docs/algorithms.md#minigrid-mazes-and-the-ued-benchmark).

Plain Python/numpy: the teacher service uses it without minigrid.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_schemas.wire import Bool, Int
from env_generators.level_generator import LevelGenerator
from env_generators.levels import (
    MAX_SIDE,
    Level,
    empty_level,
    generate_level,
    mutate,
    render_png,
)

#: Tiles of the largest room (a bound for the counts of walls and lava).
MAX_TILES = MAX_SIDE * MAX_SIDE


class MiniGridGeneratorConfig(BaseModel):
    """Random MiniGrid mazes: a ``size`` x ``size`` room (border included) with a uniformly
    drawn number of walls (and lava tiles) placed at random, agent and goal on free tiles.
    Defaults follow the reference UED setting (15 x 15, 0-60 walls;
    docs/algorithms.md#minigrid-mazes-and-the-ued-benchmark)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: Int = Field(default=15, ge=5, le=MAX_SIDE, description="Side, border included.")
    min_walls: Int = Field(default=0, ge=0, le=MAX_TILES, description="Fewest wall tiles drawn.")
    max_walls: Int = Field(
        default=60, ge=0, le=MAX_TILES, description="Most wall tiles drawn (inclusive)."
    )
    max_lava: Int = Field(
        default=0, ge=0, le=MAX_TILES, description="Most lava tiles drawn (inclusive)."
    )
    solvable: Bool = Field(
        default=False,
        description="Redraw until the goal is reachable (the reference DR does not).",
    )

    @model_validator(mode="after")
    def _check(self) -> MiniGridGeneratorConfig:
        if self.min_walls > self.max_walls:
            raise ValueError(
                f"min_walls ({self.min_walls}) must be <= max_walls ({self.max_walls})"
            )
        interior = (self.size - 2) ** 2
        if self.max_walls + self.max_lava > interior // 2:
            raise ValueError(
                f"max_walls + max_lava ({self.max_walls + self.max_lava}) must be at most half "
                f"of the {interior} interior tiles"
            )
        return self


class MiniGridLevels(LevelGenerator):
    """Base of the generators of MiniGrid levels in the ASCII encoding of
    :mod:`env_generators.levels`: they validate and draw levels alike and differ in how they
    draw one (and whether they edit)."""

    encoding: ClassVar[str] = (
        "One character per tile, rows top to bottom separated by newlines: '#' wall, "
        "'.' floor, 'G' goal, 'L' lava, 'K' key, 'D' locked door, and the agent as '>', 'v', "
        "'<' or '^' (facing right, down, left, up). The border is wall; exactly one agent "
        "and one goal; a door needs a key."
    )

    def validate(self, level: str) -> str:
        """``level`` if it parses (``LevelError``, a ``ValueError``, says where it does not)."""
        Level.parse(level)
        return level

    def render_png(self, level: str, tile: int = 16) -> bytes:
        """The maze in MiniGrid's colours (needs Pillow)."""
        return render_png(Level.parse(level), tile)


class MiniGridGenerator(MiniGridLevels):
    """MiniGrid mazes: uniform wall (and lava) counts at random places; ACCEL edits tiles."""

    name: ClassVar[str] = "minigrid"
    description: ClassVar[str] = "MiniGrid mazes (ASCII levels)"
    config_model: ClassVar[type[BaseModel]] = MiniGridGeneratorConfig

    def sample(self, rng: np.random.Generator, config: MiniGridGeneratorConfig) -> str:
        """A ``size`` x ``size`` room with uniformly drawn wall and lava counts."""
        walls = int(rng.integers(config.min_walls, config.max_walls + 1))
        lava = int(rng.integers(0, config.max_lava + 1))
        return generate_level(
            rng, size=config.size, walls=walls, lava=lava, solvable=config.solvable
        ).encode()

    def empty(self, rng: np.random.Generator, config: MiniGridGeneratorConfig) -> str:
        """An empty room of the space's size, agent and goal at random (ACCEL's start)."""
        return empty_level(config.size, rng).encode()

    def mutate(self, level: str, rng: np.random.Generator, num_edits: int) -> str:
        """``num_edits`` random tile edits (docs/algorithms.md#accel)."""
        return mutate(Level.parse(level), rng, num_edits=num_edits).encode()
