"""Parametric environments: a box of parameters mapped to a MiniGrid level, deterministically
(docs/algorithms.md#parametric-mazes).

The setting of the ALP-GMM paper: a teacher samples the parameters of a procedural generator
(here grid size, wall and lava density, the goal's minimum distance and a seed), and the
student plays what the generator builds from them. A ``box`` space names the generator
(``{"kind": "box", "generator": "minigrid_params", "dims": [...]}``); its dims are some of the
generator's parameters, within their ranges, and the others keep their defaults. The service
attaches the built level to every task of such a space, so any student that plays MiniGrid
levels (ours, or one over HTTP) plays box tasks too; POET can mutate the parameters as the
paper mutates its terrain parameters.

The same parameters always build the same level: the draw is seeded from the parameters
themselves (the ``seed`` one and the rounded others).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from env_generators.levels import generate_level, shortest_path


@dataclass(frozen=True, slots=True)
class Parameter:
    """One parameter of a parametric generator: its range and its default."""

    name: str
    low: float
    high: float
    default: float
    description: str


class ParametricMazes:
    """MiniGrid levels from ``size``, ``wall_density``, ``lava_density``, ``goal_distance``
    and ``seed`` (see :data:`PARAMETERS`)."""

    name: ClassVar[str] = "minigrid_params"
    description: ClassVar[str] = (
        "MiniGrid mazes from parameters: square room side, share of the interior that is wall "
        "and lava, the goal's minimum path distance (a share of the longest possible) and a "
        "seed; the same parameters always give the same level."
    )
    PARAMETERS: ClassVar[tuple[Parameter, ...]] = (
        Parameter("size", 5, 15, 15, "room side in tiles, border included (rounded)"),
        Parameter("wall_density", 0.0, 0.6, 0.2, "share of the interior tiles that are walls"),
        Parameter("lava_density", 0.0, 0.3, 0.0, "share of the interior tiles that are lava"),
        Parameter(
            "goal_distance",
            0.0,
            1.0,
            0.0,
            "least agent-to-goal path length, as a share of 2 x (side - 3)",
        ),
        Parameter("seed", 0, 1_000_000, 0, "which of the levels with these parameters (rounded)"),
    )
    #: Draws tried for a solvable level that meets the goal distance; the farthest is kept.
    TRIES: ClassVar[int] = 64

    def parameter(self, name: str) -> Parameter:
        """The parameter called ``name``.

        Raises:
            KeyError: listing the known names.
        """
        for p in self.PARAMETERS:
            if p.name == name:
                return p
        raise KeyError(
            f"the {self.name!r} generator has no parameter {name!r}; it has "
            f"{[p.name for p in self.PARAMETERS]}"
        )

    def space(self, ranges: Mapping[str, tuple[float, float]]) -> dict[str, object]:
        """The ``box`` space JSON over these parameters and ranges, for ``POST
        /v1/experiments`` (e.g. ``space({"size": (5, 9), "seed": (0, 1000)})``).

        Raises:
            KeyError: an unknown parameter.
            ValueError: a range outside the parameter's.
        """
        dims = []
        for name, (low, high) in ranges.items():
            p = self.parameter(name)
            if not p.low <= low < high <= p.high:
                raise ValueError(f"{name}: [{low}, {high}] is not inside [{p.low}, {p.high}]")
            dims.append({"name": name, "low": low, "high": high})
        return {"kind": "box", "generator": self.name, "dims": dims}

    def resolve(self, params: Mapping[str, float]) -> dict[str, float]:
        """Every parameter: the given ones (clipped to their ranges), the defaults for the
        rest."""
        out = {}
        for p in self.PARAMETERS:
            v = float(params.get(p.name, p.default))
            out[p.name] = min(max(v, p.low), p.high)
        return out

    def build(self, params: Mapping[str, float]) -> str:
        """The level of these parameters (its ASCII encoding).

        Walls and lava are placed uniformly on the interior; among up to :data:`TRIES` draws
        the first solvable one whose shortest path reaches the goal distance is kept, else
        the solvable one with the longest path, else (densities so high that nothing is
        solvable) the last draw.
        """
        q = self.resolve(params)
        size = round(q["size"])
        interior = (size - 2) ** 2
        walls = round(q["wall_density"] * interior)
        lava = round(q["lava_density"] * interior)
        # agent and goal need two free tiles: density wins over lava, lava over nothing
        walls = min(walls, interior - 2)
        lava = min(lava, interior - 2 - walls)
        need = q["goal_distance"] * 2 * (size - 3)
        # seeded from the parameters as built (integers), so equal levels come from equal keys
        rng = np.random.default_rng(
            [round(q["seed"]), size, walls, lava, round(1000 * q["goal_distance"])]
        )
        best, best_len, last = None, -1, None
        for _ in range(self.TRIES):
            level = generate_level(rng, size=size, walls=walls, lava=lava, solvable=False)
            last = level
            length = shortest_path(level)
            if length is not None and length >= need:
                return level.encode()
            if length is not None and length > best_len:
                best, best_len = level, length
        assert last is not None
        return (best or last).encode()
