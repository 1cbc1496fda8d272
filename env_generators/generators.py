"""Generators by name: what a ``level`` task space's ``generator`` refers to, and the
parametric generators a ``box`` space may name (:mod:`env_generators.parametric`).

A generator is registered here and nowhere else; the service, the teachers and the API
schema all find it through :func:`get_generator` (see
:class:`env_generators.level_generator.LevelGenerator`). Plain Python/numpy: the teacher
service uses this without minigrid.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from env_generators.level_generator import LevelGenerator
from env_generators.level_set import MiniGridSetGenerator
from env_generators.minigrid_generator import MiniGridGenerator
from env_generators.parametric import ParametricMazes

#: Every level generator, by the name a level space gives.
GENERATORS: Mapping[str, LevelGenerator] = MappingProxyType(
    {gen.name: gen for gen in (MiniGridGenerator(), MiniGridSetGenerator())}
)


#: Every parametric generator (box parameters -> a level), by the name a box space gives.
PARAMETRIC_GENERATORS: Mapping[str, ParametricMazes] = MappingProxyType(
    {gen.name: gen for gen in (ParametricMazes(),)}
)


class UnknownGeneratorError(KeyError):
    """No level generator is registered under that name."""

    def __str__(self) -> str:
        return str(self.args[0])


def get_generator(name: str) -> LevelGenerator:
    """The generator called ``name``.

    Raises:
        UnknownGeneratorError: listing the known names.
    """
    try:
        return GENERATORS[name]
    except KeyError:
        raise UnknownGeneratorError(
            f"unknown level generator {name!r}; known: {sorted(GENERATORS)}"
        ) from None


def get_parametric(name: str) -> ParametricMazes:
    """The parametric generator called ``name``.

    Raises:
        UnknownGeneratorError: listing the known names.
    """
    try:
        return PARAMETRIC_GENERATORS[name]
    except KeyError:
        raise UnknownGeneratorError(
            f"unknown parametric generator {name!r}; known: {sorted(PARAMETRIC_GENERATORS)}"
        ) from None
