"""A MiniGrid environment built from a :class:`~env_generators.levels.Level`
(docs/architecture.md#environment-generators).

The student sees the standard MiniGrid partial observation (``image`` of the agent's view,
``direction``, ``mission``), so a policy trained here can be evaluated on any MiniGrid env id
built with the same view size. Success gives ``1 - 0.9 * t / T``, lava ends the episode with
0, and ``T`` is reached with 0 (docs/algorithms.md#minigrid-mazes-and-the-ued-benchmark).

The level can be changed between episodes (:meth:`LevelEnv.set_level`) without changing the
observation or action spaces, which is what the curriculum wrapper relies on.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from minigrid.core.constants import OBJECT_TO_IDX
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Door, Goal, Key, Lava, Wall
from minigrid.minigrid_env import MiniGridEnv

from env_generators.held_out import held_out_maze, is_held_out
from env_generators.levels import DOOR, GOAL, KEY, LAVA, WALL, Level

#: View size of the reference results (docs/algorithms.md#minigrid-mazes-and-the-ued-benchmark).
DEFAULT_VIEW = 5
#: Episode cap of the reference results for 15 x 15 levels.
REFERENCE_STEPS = 250


def default_max_steps(level: Level) -> int:
    """250 steps for levels up to 15 x 15 (the reference), scaled with the area above."""
    return max(REFERENCE_STEPS, round(REFERENCE_STEPS * level.width * level.height / 225))


def as_level(level: Level | str) -> Level:
    """A :class:`Level` from a level, its encoding, or the name of a held-out maze."""
    if isinstance(level, Level):
        return level
    if is_held_out(level):
        return held_out_maze(level)
    return Level.parse(level)


class LevelEnv(MiniGridEnv):
    """MiniGrid on a given level.

    Args:
        level: the level (a :class:`Level`, its encoding, or a held-out maze name).
        agent_view_size: side of the agent's square view (odd, >= 3).
        max_steps: episode cap ``T``; default :func:`default_max_steps` of each level.
        actions: ``"navigation"`` (left, right, forward: the reference setting) or
            ``"full"`` (all 7 MiniGrid actions, needed for keys and doors).
        render_mode: as in gymnasium.
    """

    def __init__(
        self,
        level: Level | str,
        *,
        agent_view_size: int = DEFAULT_VIEW,
        max_steps: int | None = None,
        actions: Literal["navigation", "full"] = "navigation",
        render_mode: str | None = None,
    ) -> None:
        self.level = as_level(level)
        self._fixed_max_steps = max_steps
        self._codes: np.ndarray | None = None  # see gen_obs
        self._codes_grid: Grid | None = None
        self._opaque = np.zeros((0, 0), dtype=bool)
        self._pad = 0
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: "get to the green goal square"),
            width=self.level.width,
            height=self.level.height,
            max_steps=max_steps or default_max_steps(self.level),
            see_through_walls=False,
            agent_view_size=agent_view_size,
            render_mode=render_mode,
        )
        if actions == "navigation":
            self.action_space = gym.spaces.Discrete(3)  # left, right, forward
        elif actions != "full":
            raise ValueError(f"actions must be 'navigation' or 'full', got {actions!r}")

    def set_level(self, level: Level | str) -> None:
        """Use another level from the next ``reset()`` on (spaces do not change)."""
        self.level = as_level(level)
        self.width, self.height = self.level.width, self.level.height
        self.max_steps = self._fixed_max_steps or default_max_steps(self.level)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Reset; ``options={"level": ...}`` switches level first."""
        if options and "level" in options:
            self.set_level(options["level"])
        self._codes = None  # the grid is built anew
        return super().reset(seed=seed, options=options)

    def step(self, action: Any) -> Any:
        """MiniGrid's step; only pickup, drop and toggle can change the grid (navigation
        never does), so only they make the observation re-read it."""
        if int(action) not in _NAVIGATION:
            self._codes = None
        return super().step(action)

    def gen_obs(self) -> dict[str, Any]:
        """The observation of :meth:`MiniGridEnv.gen_obs`, the same arrays, computed from a
        numpy copy of the grid's codes instead of building, rotating and encoding a
        sub-grid of objects at every step (that made up most of the cost of a step).

        The copy is re-read after a reset and after any action that may change the grid; a
        caller that edits ``env.grid`` in place must call :meth:`grid_changed`.
        """
        view = self.agent_view_size
        if self._codes is None or self._codes_grid is not self.grid:
            self._read_grid()
        top_x, top_y, _, _ = self.get_view_exts()
        x, y = top_x + self._pad, top_y + self._pad
        codes = self._codes[x : x + view, y : y + view]
        opaque = self._opaque[x : x + view, y : y + view]
        turns = (self.agent_dir + 1) % 4  # MiniGrid rotates the view left agent_dir + 1 times
        if turns:
            codes, opaque = np.rot90(codes, -turns), np.rot90(opaque, -turns)
        visible = np.array(_visible(opaque.tolist(), view))
        image = np.where(visible[:, :, None], codes, 0).astype(np.uint8)
        # the agent sees what it carries on its own tile (MiniGrid: an empty tile otherwise)
        image[view // 2, view - 1] = self.carrying.encode() if self.carrying else _EMPTY
        return {"image": image, "direction": self.agent_dir, "mission": self.mission}

    def grid_changed(self) -> None:
        """Make the next observation re-read the grid (after editing ``env.grid`` in place)."""
        self._codes = None

    def _read_grid(self) -> None:
        """Codes (object, colour, state) and opacity of every tile, padded with walls by the
        view size on each side as MiniGrid's ``Grid.slice`` pads outside the grid."""
        pad = self.agent_view_size
        w, h = self.grid.width, self.grid.height
        codes = np.empty((w + 2 * pad, h + 2 * pad, 3), dtype=np.uint8)
        codes[:] = _WALL_CODE
        opaque = np.ones((w + 2 * pad, h + 2 * pad), dtype=bool)
        for i in range(w):
            for j in range(h):
                obj = self.grid.get(i, j)
                codes[i + pad, j + pad] = _EMPTY if obj is None else obj.encode()
                opaque[i + pad, j + pad] = obj is not None and not obj.see_behind()
        self._codes, self._opaque, self._codes_grid, self._pad = codes, opaque, self.grid, pad

    def _gen_grid(self, width: int, height: int) -> None:
        level = self.level
        self.grid = Grid(level.width, level.height)
        for (y, x), t in np.ndenumerate(level.tiles):
            if t == WALL:
                self.grid.set(x, y, Wall())
            elif t == GOAL:
                self.grid.set(x, y, Goal())
            elif t == LAVA:
                self.grid.set(x, y, Lava())
            elif t == KEY:
                self.grid.set(x, y, Key("yellow"))
            elif t == DOOR:
                self.grid.set(x, y, Door("yellow", is_locked=True))
        self.agent_pos = level.agent
        self.agent_dir = level.agent_dir
        self.mission = "get to the green goal square"


#: MiniGrid's left, right and forward actions, which never change the grid.
_NAVIGATION = frozenset((0, 1, 2))
#: Codes of an empty visible tile and of a wall (also what lies outside the grid).
_EMPTY = (OBJECT_TO_IDX["empty"], 0, 0)
_WALL_CODE = Wall().encode()


def _visible(opaque: list[list[bool]], n: int) -> list[list[bool]]:
    """Visibility in an n x n view (indexed [x][y], the agent at (n // 2, n - 1)): the same
    propagation as MiniGrid's ``Grid.process_vis``, which an opaque tile stops."""
    mask = [[False] * n for _ in range(n)]
    mask[n // 2][n - 1] = True
    for j in reversed(range(n)):
        for i in range(n - 1):
            if mask[i][j] and not opaque[i][j]:
                mask[i + 1][j] = True
                if j > 0:
                    mask[i + 1][j - 1] = mask[i][j - 1] = True
        for i in reversed(range(1, n)):
            if mask[i][j] and not opaque[i][j]:
                mask[i - 1][j] = True
                if j > 0:
                    mask[i - 1][j - 1] = mask[i][j - 1] = True
    return mask


#: Gymnasium id namespace of the held-out mazes: ``gym.make("autocurriculum/Labyrinth-v0")``.
ENV_NAMESPACE = "autocurriculum"


def register_envs() -> list[str]:
    """Register every held-out maze with gymnasium (idempotent, as minigrid does on import);
    return their ids."""
    from env_generators.held_out import held_out_names

    ids = []
    for name in held_out_names():
        env_id = f"{ENV_NAMESPACE}/{name}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=LevelEnv, kwargs={"level": name})
        ids.append(env_id)
    return ids


register_envs()
