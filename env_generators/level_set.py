"""The ``minigrid_set`` level generator: a fixed, finite set of MiniGrid levels given in the
space's config (docs/algorithms.md#a-fixed-set-of-levels).

The setting of the original PLR paper (a finite training set of levels), of hand-made
curricula, and of POET's control run, which trains from scratch on the environments POET
ended with: ``random`` then samples the set uniformly and ``plr`` replays it by score.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from env_generators.levels import MAX_SIDE, Level
from env_generators.minigrid_generator import MiniGridLevels

#: Most levels a set may hold (a request body of a few MB at most).
MAX_LEVELS = 4096
#: Longest level encoding: the largest room, a newline after every row but the last.
MAX_LEVEL_CHARS = MAX_SIDE * (MAX_SIDE + 1) - 1


class MiniGridSetConfig(BaseModel):
    """The levels of the set, each in the ASCII encoding of the ``minigrid`` generator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    levels: list[Annotated[str, StringConstraints(min_length=1, max_length=MAX_LEVEL_CHARS)]] = (
        Field(min_length=1, max_length=MAX_LEVELS, description="The levels, ASCII-encoded.")
    )

    @field_validator("levels")
    @classmethod
    def _parse(cls, levels: list[str]) -> list[str]:
        for i, level in enumerate(levels):
            try:
                Level.parse(level)
            except ValueError as exc:
                raise ValueError(f"level {i}: {exc}") from None
        return levels


class MiniGridSetGenerator(MiniGridLevels):
    """A fixed set of MiniGrid levels; a draw is one of them, uniformly."""

    name: ClassVar[str] = "minigrid_set"
    description: ClassVar[str] = "A fixed set of MiniGrid levels given in the config"
    config_model: ClassVar[type[BaseModel]] = MiniGridSetConfig

    def sample(self, rng: np.random.Generator, config: MiniGridSetConfig) -> str:
        """One level of the set, uniformly."""
        return config.levels[int(rng.integers(len(config.levels)))]
