"""Level generators by name: what a ``level`` task space's ``generator`` refers to.

Each generator has a validated config (the space's fixed ``config``) and draws random
levels from it, which is what domain randomisation (the ``random`` teacher) serves. Plain
Python/numpy: the teacher service uses this without minigrid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api_schemas.wire import Bool, Int
from env_generators.levels import MAX_SIDE, Level, generate_level

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


def _sample_minigrid(rng: np.random.Generator, cfg: MiniGridGeneratorConfig) -> Level:
    walls = int(rng.integers(cfg.min_walls, cfg.max_walls + 1))
    lava = int(rng.integers(0, cfg.max_lava + 1))
    return generate_level(rng, size=cfg.size, walls=walls, lava=lava, solvable=cfg.solvable)


@dataclass(frozen=True, slots=True)
class LevelGenerator:
    """A named generator: its config model and how it draws a level."""

    name: str
    config_model: type[BaseModel]
    sample: Callable[[np.random.Generator, Any], Level]
    description: str


GENERATORS: dict[str, LevelGenerator] = {
    "minigrid": LevelGenerator(
        "minigrid",
        MiniGridGeneratorConfig,
        _sample_minigrid,
        "MiniGrid mazes (ASCII levels, docs/architecture.md#environment-generators)",
    )
}


def get_generator(name: str) -> LevelGenerator:
    """The generator called ``name`` (``KeyError`` listing the known ones)."""
    try:
        return GENERATORS[name]
    except KeyError:
        raise KeyError(f"unknown level generator {name!r}; known: {sorted(GENERATORS)}") from None


def generator_config(name: str, config: dict[str, Any]) -> BaseModel:
    """Validate a level space's config against its generator (``ValueError`` otherwise)."""
    try:
        gen = get_generator(name)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    return gen.config_model(**config)
