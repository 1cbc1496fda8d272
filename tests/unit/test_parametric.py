"""The parametric maze generator: a box of parameters mapped to a level, deterministically,
with the densities, the size and the goal distance it is asked for."""

from __future__ import annotations

import pytest

from env_generators.generators import get_parametric
from env_generators.levels import Level, shortest_path
from env_generators.parametric import ParametricMazes

GEN = ParametricMazes()


def test_the_same_parameters_build_the_same_level_and_the_seed_changes_it() -> None:
    a = GEN.build({"size": 9, "wall_density": 0.3, "seed": 3})
    assert a == GEN.build({"size": 9, "wall_density": 0.3, "seed": 3})
    assert a == GEN.build({"size": 9.2, "wall_density": 0.3, "seed": 3.1})  # rounded alike
    assert a != GEN.build({"size": 9, "wall_density": 0.3, "seed": 4})
    # left-out parameters take their defaults: a 15x15 room, 20% walls, no lava
    level = Level.parse(GEN.build({}))
    assert (level.width, level.height) == (15, 15)
    assert level.count("#") - 4 * 14 == round(0.2 * 13 * 13) and level.count("L") == 0


@pytest.mark.parametrize("seed", range(5))
def test_sizes_densities_and_the_goal_distance_are_what_was_asked(seed: int) -> None:
    params = {"size": 11, "wall_density": 0.2, "lava_density": 0.1, "goal_distance": 0.6}
    level = Level.parse(GEN.build({**params, "seed": seed}))
    interior = 9 * 9
    assert (level.width, level.height) == (11, 11)
    assert level.count("#") - 4 * 10 == round(0.2 * interior)
    assert level.count("L") == round(0.1 * interior)
    # solvable, and at least 60% of the longest agent-to-goal distance 2 x (11 - 3)
    assert shortest_path(level) >= 0.6 * 2 * 8


def test_values_outside_the_ranges_are_clipped_and_crowded_rooms_still_build() -> None:
    assert GEN.resolve({"size": 99, "wall_density": -1}) == {
        "size": 15, "wall_density": 0.0, "lava_density": 0.0, "goal_distance": 0.0, "seed": 0,
    }  # fmt: skip
    crowded = Level.parse(GEN.build({"size": 5, "wall_density": 0.6, "lava_density": 0.3}))
    assert crowded.count("G") == 1  # agent and goal always find two free tiles


def test_unknown_names_say_what_exists() -> None:
    with pytest.raises(KeyError, match="minigrid_params"):
        get_parametric("terrain")
    with pytest.raises(KeyError, match="wall_density"):
        GEN.parameter("roughness")


def test_the_space_helper_writes_the_box_json_and_checks_ranges() -> None:
    assert GEN.space({"size": (5, 9), "seed": (0, 10)}) == {
        "kind": "box",
        "generator": "minigrid_params",
        "dims": [{"name": "size", "low": 5, "high": 9}, {"name": "seed", "low": 0, "high": 10}],
    }
    with pytest.raises(ValueError, match="not inside"):
        GEN.space({"size": (3, 9)})
