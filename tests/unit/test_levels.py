"""MiniGrid levels (env_generators/levels.py, held_out.py, generators.py, minigrid_env.py):
encoding round trip, strict parsing, solvability, generation, ACCEL mutations, rendering,
the held-out mazes, the env built from a level, and the level space over HTTP."""

from __future__ import annotations

import io

import numpy as np
import pytest

from api_schemas.spaces import LevelSpace, SpaceError
from env_generators.generators import GENERATORS, get_generator
from env_generators.held_out import held_out_maze, held_out_names
from env_generators.levels import (
    GOAL,
    WALL,
    Level,
    LevelError,
    empty_level,
    generate_level,
    is_solvable,
    mutate,
    render_png,
    render_rgb,
    render_svg,
    shortest_path,
)
from env_generators.minigrid_generator import MiniGridGeneratorConfig
from teacher_service.spaces import SpaceConfigError, check_proposal, normalise_space
from teacher_service.teachers import TaskProposal

SMALL = """
#######
#>..#.#
#.#.#.#
#.#...#
#.###G#
#######"""


def test_round_trip_and_fields() -> None:
    level = Level.parse(SMALL)
    assert level.encode() == SMALL.strip("\n")
    assert Level.parse(level.encode()).encode() == level.encode()
    assert (level.width, level.height) == (7, 6)
    assert level.agent == (1, 1) and level.agent_dir == 0 and level.goal == (5, 4)
    assert level.tiles[1, 1] == "."  # the agent stands on floor
    for d, ch in enumerate(">v<^"):
        text = SMALL.replace(">", ch)
        assert Level.parse(text).agent_dir == d and Level.parse(text).encode() == text.strip()
    assert Level.parse(SMALL + "\n").encode() == SMALL.strip()  # trailing newline tolerated


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "3x3"),
        ("##\n##", "3x3"),
        ("#####\n#>.G#\n####", "row 2 has 4 tiles"),
        ("#####\n#>xG#\n#####", "unknown tile 'x' at row 1, column 2"),
        ("#####\n.>.G#\n#####", "border must be wall"),
        ("#####\n#..G#\n#####", "exactly one agent"),
        ("#####\n#>>G#\n#####", "exactly one agent"),
        ("#####\n#>..#\n#####", "exactly one goal"),
        ("######\n#>GG.#\n######", "exactly one goal"),
        ("######\n#>DG.#\n######", "door 'D' needs a key"),
        ("######\n#>KKG#\n######", "at most one key"),
        ("#" * 70 + "\n#>" + "." * 66 + "G#\n" + "#" * 70, "at most 64x64"),
        ("#####\n#>\u00e9G#\n#####", "unknown tile '\u00e9' at row 1, column 2"),
        # The first broken rule in reading order is named, whichever kind it is.
        ("#####\n#>xG.\n####", "unknown tile 'x' at row 1, column 2"),
        ("#####\n#>.G.\n#x##", "border must be wall '#': '.' at row 1, column 4"),
        ("#####\n#>.G#\n#x###", "unknown tile 'x' at row 2, column 1"),
    ],
)
def test_malformed_levels_are_rejected_with_messages(text: str, message: str) -> None:
    with pytest.raises(LevelError, match=message):
        Level.parse(text)


def test_parse_round_trips_generated_levels_with_every_tile() -> None:
    rng = np.random.default_rng(3)
    for i in range(200):
        size = int(rng.integers(5, 20))
        level = generate_level(rng, size=size, walls=(size - 2) ** 2 // 4, lava=2, solvable=False)
        tiles = level.tiles.copy()
        if i % 2:  # a key and a door on two floor tiles other than the agent's
            floor = [tuple(p) for p in np.argwhere(tiles == ".") if tuple(p)[::-1] != level.agent]
            if len(floor) >= 2:
                tiles[floor[0]], tiles[floor[1]] = "K", "D"
        level = Level(tiles=tiles, agent=level.agent, agent_dir=i % 4)
        text = level.encode()
        for variant in (text, text.replace("\n", "\r\n") + "\n"):
            parsed = Level.parse(variant)
            assert parsed.tiles.dtype == level.tiles.dtype
            assert np.array_equal(parsed.tiles, level.tiles)
            assert (parsed.agent, parsed.agent_dir) == (level.agent, level.agent_dir)
            assert parsed.encode() == text


def test_shortest_path_and_solvability() -> None:
    assert shortest_path(Level.parse(SMALL)) == 7  # right 2, down 2, right 2, down 1
    walled = Level.parse("#######\n#>.#.G#\n#######")
    assert shortest_path(walled) is None and not is_solvable(walled)
    lava = Level.parse("#######\n#>.L.G#\n#######")
    assert not is_solvable(lava)
    door = Level.parse("#######\n#K>.DG#\n#######")
    assert not is_solvable(door)  # navigation actions cannot use keys or doors
    assert shortest_path(door, actions="full") == 3  # pick up the key, walk through
    assert shortest_path(Level.parse("#####\n#>G.#\n#####")) == 1


def test_generated_levels_follow_their_parameters_and_are_solvable_when_asked() -> None:
    rng = np.random.default_rng(0)
    for walls in (0, 10, 40, 60):
        level = generate_level(rng, size=15, walls=walls, lava=3, solvable=True)
        assert level.width == level.height == 15
        assert level.count(WALL) == 4 * 14 + walls and level.count("L") == 3
        assert is_solvable(level)
        assert Level.parse(level.encode()) is not None
    a = generate_level(np.random.default_rng(5), walls=30)
    assert a.encode() == generate_level(np.random.default_rng(5), walls=30).encode()
    with pytest.raises(ValueError, match="leave 2"):
        generate_level(rng, size=5, walls=8)
    with pytest.raises(ValueError, match="no solvable level"):
        # A 5x5 room with 7 of its 9 interior tiles walled is almost never solvable.
        generate_level(np.random.default_rng(1), size=5, walls=7, solvable=True, max_tries=3)


def test_mutations_keep_agent_and_goal() -> None:
    rng = np.random.default_rng(0)
    level = empty_level(15, rng)
    assert level.count(WALL) == 4 * 14 and level.count(GOAL) == 1
    for _ in range(300):
        level = mutate(level, rng, num_edits=5)
        parsed = Level.parse(level.encode())  # always a valid level
        assert parsed.count(GOAL) == 1
        assert level.tiles[level.agent[1], level.agent[0]] == "."
        assert level.agent != level.goal
        assert np.all(level.tiles[0, :] == WALL) and np.all(level.tiles[:, -1] == WALL)
    changed = mutate(empty_level(15, np.random.default_rng(1)), np.random.default_rng(2), 5)
    diff = changed.tiles != empty_level(15, np.random.default_rng(1)).tiles
    assert 1 <= int(diff.sum()) <= 10  # at most 5 edits (+ re-placed goal)
    assert mutate(level, rng, 0).encode() == level.encode()
    with pytest.raises(ValueError, match="num_edits"):
        mutate(level, rng, -1)


def test_rendering_produces_images() -> None:
    from PIL import Image

    level = held_out_maze("FourRooms")
    png = render_png(level, tile=8)
    img = Image.open(io.BytesIO(png))
    assert img.size == (15 * 8, 15 * 8) and img.mode == "RGB"
    rgb = render_rgb(level, tile=8)
    assert rgb.shape == (120, 120, 3)
    assert tuple(rgb[4, 4]) == (100, 100, 100)  # a border wall tile
    gx, gy = level.goal
    assert tuple(rgb[gy * 8 + 4, gx * 8 + 4]) == (0, 200, 0)
    ax, ay = level.agent
    assert tuple(rgb[ay * 8 + 4, ax * 8 + 4]) == (220, 30, 30)  # the agent's triangle
    svg = render_svg(level, tile=8)
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg.count("<rect") == 1 + level.count(WALL) + level.count(GOAL) and "<polygon" in svg


def test_held_out_mazes_load_and_are_solvable() -> None:
    names = held_out_names()
    assert len(names) >= 10 and len(set(names)) == len(names)
    sizes = set()
    for name in names:
        level = held_out_maze(name)
        assert is_solvable(level), name
        sizes.add(level.width)
    assert max(sizes) >= 51 and 15 in sizes  # the reference size and a large one
    with pytest.raises(KeyError, match="known"):
        held_out_maze("Nope")


def test_level_env_from_levels_and_names() -> None:
    from env_generators.minigrid_env import LevelEnv

    env = LevelEnv("Corridor")
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (5, 5, 3) and env.action_space.n == 3
    assert env.max_steps == 250
    spaces = (env.observation_space, env.action_space)
    # Walk a known optimal path: success reward 1 - 0.9 t / T.
    env.set_level("#####\n#>.G#\n#####")
    env.reset()
    _, r1, term1, _, _ = env.step(2)
    _, r2, term2, _, _ = env.step(2)
    assert (r1, term1) == (0, False) and term2 and r2 == pytest.approx(1 - 0.9 * 2 / 250)
    # Lava ends the episode with 0; the cap truncates with 0.
    env.reset(options={"level": "#####\n#>LG#\n#####"})
    _, r, term, _, _ = env.step(2)
    assert term and r == 0
    big = LevelEnv("PerfectMazeLarge", max_steps=7)
    big.reset()
    for _ in range(7):
        _, r, term, trunc, _ = big.step(0)
    assert trunc and not term and r == 0
    assert (env.observation_space, env.action_space) == spaces  # fixed across levels
    assert LevelEnv("FourRooms", actions="full").action_space.n == 7
    with pytest.raises(LevelError):
        LevelEnv("not a level")


def test_generator_config_is_validated() -> None:
    gen = get_generator("minigrid")
    cfg = MiniGridGeneratorConfig(max_walls=10, solvable=True)
    rng = np.random.default_rng(0)
    for _ in range(20):
        level = Level.parse(gen.sample(rng, cfg))
        assert 4 * 14 <= level.count(WALL) <= 4 * 14 + 10 and is_solvable(level)
    with pytest.raises(ValueError, match="min_walls"):
        MiniGridGeneratorConfig(min_walls=5, max_walls=4)
    with pytest.raises(ValueError, match="min_walls"):
        gen.config({"min_walls": 5, "max_walls": 4})
    with pytest.raises(SpaceConfigError, match="unknown level generator") as err:
        normalise_space(LevelSpace(generator="nope"))
    assert err.value.errors[0]["loc"] == ("generator",)
    with pytest.raises(SpaceConfigError) as err:
        normalise_space(LevelSpace(config={"size": 3}))
    assert err.value.errors[0]["loc"] == ("config", "size")
    space = normalise_space(LevelSpace(config={"size": 9, "max_walls": 10}))
    assert space.config == {**MiniGridGeneratorConfig().model_dump(), "size": 9, "max_walls": 10}
    corridor = held_out_maze("Corridor").encode()
    assert gen.validate(corridor) == corridor
    check_proposal(space, TaskProposal(level=corridor))
    with pytest.raises(SpaceError, match="malformed level"):
        check_proposal(space, TaskProposal(level="###"))


def test_the_minigrid_generator_owns_its_encoding() -> None:
    """Sampling, validating, editing and drawing all go through the generator, on strings."""
    gen = get_generator("minigrid")
    cfg = gen.config({"size": 9, "max_walls": 10})
    rng = np.random.default_rng(3)
    level = gen.sample(rng, cfg)
    assert isinstance(level, str) and gen.validate(level) == level
    assert gen.supports_editing
    empty = Level.parse(gen.empty(rng, cfg))
    assert empty.width == 9 and empty.count(WALL) == 4 * 8
    child = gen.mutate(level, np.random.default_rng(1), 5)
    assert gen.validate(child) == child
    assert child == mutate(Level.parse(level), np.random.default_rng(1), num_edits=5).encode()
    assert gen.render_png(level)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(LevelError):
        gen.validate("#G#")
    assert sorted(GENERATORS) == ["minigrid", "minigrid_set"]


def test_held_out_mazes_are_gymnasium_env_ids() -> None:
    import gymnasium as gym

    from env_generators.minigrid_env import register_envs

    ids = register_envs()
    assert "autocurriculum/Labyrinth-v0" in ids and len(ids) == len(held_out_names())
    env = gym.make("autocurriculum/Labyrinth-v0")
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (5, 5, 3)
    assert env.unwrapped.level.encode() == held_out_maze("Labyrinth").encode()
    env.close()


def _with_key_and_door(level: Level, rng: np.random.Generator) -> Level:
    """``level`` with a key and a locked door on two free tiles."""
    tiles = level.tiles.copy()
    free = [tuple(p) for p in np.argwhere(tiles == ".") if (p[1], p[0]) != level.agent]
    for (y, x), tile in zip(
        (free[i] for i in rng.choice(len(free), 2, replace=False)), "KD", strict=True
    ):
        tiles[y, x] = tile
    return Level(tiles=tiles, agent=level.agent, agent_dir=level.agent_dir)


def test_level_env_observation_is_minigrids() -> None:
    """LevelEnv computes the observation from a numpy copy of the grid: the same arrays as
    MiniGrid's own gen_obs, for every view size, direction and tile kind, while doors open and
    keys are carried, across resets and held-out mazes."""
    from minigrid.core.world_object import Door, Wall
    from minigrid.minigrid_env import MiniGridEnv

    from env_generators.minigrid_env import LevelEnv

    rng = np.random.default_rng(0)
    levels: list[Level | str] = list(held_out_names())
    for _ in range(40):
        size = int(rng.integers(6, 16))
        lv = generate_level(
            rng, size=size, walls=int(rng.integers(0, (size - 2) ** 2 // 3)),
            lava=int(rng.integers(0, 3)), solvable=False,
        )  # fmt: skip
        levels.append(_with_key_and_door(lv, rng) if rng.random() < 0.7 else lv)
    # turns, forward, pickup and toggle (doors open, keys are carried), drop
    actions = rng.choice(6, size=200_000, p=[0.15, 0.15, 0.3, 0.15, 0.05, 0.2])
    seen = {"carrying": 0, "open_door": 0, "directions": set()}
    k = 0
    for level in levels:
        for view in (3, 5, 7):
            env = LevelEnv(level, agent_view_size=view, actions="full")
            obs, _ = env.reset(seed=k)
            for _ in range(200):
                ref = MiniGridEnv.gen_obs(env)
                assert np.array_equal(obs["image"], ref["image"]), (level, view)
                assert obs["image"].dtype == ref["image"].dtype
                assert obs["direction"] == ref["direction"]
                assert obs["mission"] == ref["mission"]
                seen["carrying"] += env.carrying is not None
                seen["open_door"] += any(isinstance(o, Door) and o.is_open for o in env.grid.grid)
                seen["directions"].add(env.agent_dir)
                obs, _, term, trunc, _ = env.step(int(actions[k]))
                k += 1
                if term or trunc:
                    obs, _ = env.reset()
    assert seen["carrying"] > 100 and seen["open_door"] > 100 and seen["directions"] == {0, 1, 2, 3}
    # an in-place edit of the grid shows once grid_changed() is called
    env = LevelEnv("#######\n#>....#\n#....G#\n#######")
    env.reset()
    env.grid.set(2, 1, Wall())
    env.grid_changed()
    assert np.array_equal(env.gen_obs()["image"], MiniGridEnv.gen_obs(env)["image"])
