"""What a level generator is: the one object that owns a level encoding.

A ``level`` task space names a generator; everything that depends on how its levels are
written goes through that generator: validating the space's fixed ``config``, drawing random
levels (domain randomisation, new levels of PLR), checking that a level string is
well-formed, drawing a level to PNG, and, for generators that support editing, the empty
level and the random edits ACCEL applies. Teachers and the service handle levels only as
opaque strings, so a new encoding is a new generator and one registry entry
(:data:`env_generators.generators.GENERATORS`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel


class LevelGenerator(ABC):
    """Base class of level generators. Instances are stateless: every draw takes its RNG.

    Subclasses set ``name``, ``description``, ``encoding`` (how a level is written as text,
    published in the API schema) and ``config_model`` (the pydantic model of the space's
    ``config``), and implement :meth:`sample`, :meth:`validate` and :meth:`render_png`.
    Those that can edit levels (ACCEL) also implement :meth:`empty` and :meth:`mutate`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    encoding: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]

    def config(self, raw: Mapping[str, Any]) -> BaseModel:
        """The space's config, validated (``pydantic.ValidationError`` names the field)."""
        return self.config_model.model_validate(dict(raw))

    @abstractmethod
    def sample(self, rng: np.random.Generator, config: Any) -> str:
        """A random level drawn from the distribution ``config`` describes."""

    @abstractmethod
    def validate(self, level: str) -> str:
        """``level`` if it is a well-formed level of this encoding.

        Raises:
            ValueError: saying where and why the level is malformed.
        """

    @abstractmethod
    def render_png(self, level: str, tile: int = 16) -> bytes:
        """The level drawn as PNG bytes, ``tile`` pixels per cell."""

    @property
    def supports_editing(self) -> bool:
        """Whether :meth:`empty` and :meth:`mutate` are implemented (ACCEL needs them)."""
        cls = type(self)
        return cls.empty is not LevelGenerator.empty and cls.mutate is not LevelGenerator.mutate

    def empty(self, rng: np.random.Generator, config: Any) -> str:
        """The simplest level of the space (ACCEL's starting point)."""
        raise NotImplementedError(f"the {self.name!r} generator cannot edit levels")

    def mutate(self, level: str, rng: np.random.Generator, num_edits: int) -> str:
        """``level`` after ``num_edits`` random edits (ACCEL's editor)."""
        raise NotImplementedError(f"the {self.name!r} generator cannot edit levels")
